"""``vitprune sweep``: its options, and the command body that runs a sweep and writes its reports."""

from __future__ import annotations

import argparse

import torch

import vitprune.cli.values as values
from vitprune.cli.options import add_model_arguments, add_output_arguments, model_kwargs
from vitprune.data import build_dataset
from vitprune.measure.shards import join, rank_and_world
from vitprune.methods import REGISTRY
from vitprune.models.load import load_model
from vitprune.segment.data import segmentation_dataset
from vitprune.segment.head import is_segmenter
from vitprune.sweep.files import flat_rows
from vitprune.sweep.measure import SPEED_ROUNDS
from vitprune.sweep.run import SweepSettings, sweep, write_reports
from vitprune.sweep.yardstick import points_vs_resize

TOKEN_METHODS = sorted(REGISTRY)


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitprune sweep``; sets ``run=run_sweep`` as the parser's default."""
    add_model_arguments(parser)
    add_output_arguments(parser)
    parser.add_argument(
        "--data",
        default="fashion-mnist",
        help="'fashion-mnist', 'fashion-mnist-clutter' (one item on a cluttered 56x56 canvas) "
        "or an ImageFolder directory (default: %(default)s)",
    )
    parser.add_argument("--split", default="test", help="evaluation split (default: %(default)s)")
    parser.add_argument(
        "--methods",
        type=values.listed(values.one_of(TOKEN_METHODS)),
        default="tome,evit,ppt,star,sait,resize,random,topk",
        help="comma-separated token methods and baselines (resize, random, topk: yardsticks every "
        "method is read against; with speed on, every method at a target is timed in one interleaved "
        "run with dense and resize at that target) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--macs",
        type=values.listed(values.fraction_kept),
        default="0.9,0.8,0.7,0.6,0.5",
        help="fractions of dense MACs",
    )
    parser.add_argument("--out", required=True, help="directory for sweep.json/.csv/.md and the plots")
    parser.add_argument("--resume", action="store_true", help="keep finished cells of OUT/sweep.json")
    parser.add_argument("--limit", type=values.positive_int, help="evaluate only the first N images")
    parser.add_argument(
        "--star-prior", help="STAR calibration (`vitprune calibrate`); without it STAR is skipped"
    )
    parser.add_argument(
        "--batch", type=values.positive_int, default=64, help="throughput batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=values.positive_int,
        default=SPEED_ROUNDS,
        help="interleaved timing rounds per MACs target, median kept (default: %(default)s)",
    )
    parser.add_argument("--eval-batch", type=values.positive_int, default=256, help="evaluation batch size")
    parser.add_argument("--no-speed", dest="speed", action="store_false", help="skip throughput/latency")
    parser.add_argument(
        "--threads", type=values.positive_int, help="torch threads (default: torch's choice, recorded)"
    )
    parser.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> dict:
    """Build the model and data the options name, run the sweep, write every report."""
    join()  # under torchrun each rank evaluates its share of the images; rank 0 times and writes
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = model_kwargs(args.model_kwargs)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    dense = load_model(args.model, args.pretrained, args.checkpoint, **kwargs)
    settings = SweepSettings(
        model=args.model,
        data=args.data,
        methods=[str(m) for m in args.methods],
        macs=[float(t) for t in args.macs],
        split=args.split,
        limit=args.limit,
        batch=args.batch,
        rounds=args.rounds,
        eval_batch=args.eval_batch,
        speed=args.speed,
        star_prior=args.star_prior,
        checkpoint=args.checkpoint,
        model_kwargs=kwargs,
        threads=args.threads,
    )
    dataset = (segmentation_dataset if is_segmenter(dense) else build_dataset)(args.data, args.split, dense)
    payload = sweep(dense, dataset, settings, args.out, resume=args.resume, progress=not args.json)
    if rank_and_world()[0] != 0:
        return {}
    rows = flat_rows(payload)
    versus = points_vs_resize(rows)  # one line per method: top-1 points it beats or loses to resize
    return {**write_reports(args.out, payload), "rows": rows, **({"versus_resize": versus} if versus else {})}
