"""``vitprune`` command line: thin wrappers that parse, call the library, and print."""

from __future__ import annotations

import argparse
import copy
import json
import sys

import torch

import vitprune
from vitprune.cli.options import (
    add_method_arguments,
    add_model_arguments,
    add_output_arguments,
    build_model,
    method_config,
)
from vitprune.cli.report import print_table

EPILOG = """examples:
  vitprune methods
  vitprune macs --model deit_small_patch16_224 --method tome -p r=13
  vitprune bench --model deit_small_patch16_224 --method evit --macs 0.63 --batch-sizes 1,64
  vitprune eval --model deit_small_patch16_224 --checkpoint deit_s.safetensors --data /data/imagenet/val
"""


def cmd_methods(args) -> dict:
    return {"methods": vitprune.methods()}


def _input(model, batch: int) -> torch.Tensor:
    from vitprune.data.transforms import resolve_input_size

    return torch.rand(batch, *resolve_input_size(model))


def cmd_macs(args) -> dict:
    from vitprune.measure import macs

    model = build_model(args)
    x = _input(model, args.batch)
    report = macs(model, x)
    return {"model": args.model, "method": args.method, "input": list(x.shape[1:]), **report.as_dict()}


def cmd_bench(args) -> dict:
    from vitprune.measure import macs
    from vitprune.measure.bench import speed_table

    model = build_model(args)
    models = {"dense": vitprune.remove(copy.deepcopy(model))}
    if args.method:
        models[args.method] = model
    torch.set_num_threads(args.threads or torch.get_num_threads())
    batches = [(int(b), args.runs) for b in args.batch_sizes.split(",")]
    rows = speed_table(models, batches, args.precisions.split(","), args.rounds)
    gmacs = {name: macs(m, _input(m, 1)).mean / 1e9 for name, m in models.items()}
    for row in rows:
        row["gmacs"] = gmacs[row["model"]]
    return {"threads": torch.get_num_threads(), "device": "cpu", "rows": rows}


def cmd_eval(args) -> dict:
    from vitprune.data import build_dataset, build_loader
    from vitprune.measure import macs
    from vitprune.measure.evaluate import evaluate

    model = build_model(args)
    dataset = build_dataset(args.data, args.split, model)
    if args.limit:
        dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    loader = build_loader(dataset, args.batch_size, workers=args.workers)
    metrics = evaluate(model, loader, precision=args.precision, progress=not args.json)
    report = macs(model, _input(model, 1))
    return {
        "model": args.model,
        "method": args.method,
        "data": args.data,
        **metrics,
        "gmacs": report.mean / 1e9,
    }


def cmd_calibrate(args) -> dict:
    from vitprune.calibrate.artifact import save_calibration
    from vitprune.calibrate.star import calibrate_star, calibration_images
    from vitprune.data import build_dataset

    model = build_model(args, with_method=False)
    images = calibration_images(build_dataset(args.data, args.split, model), args.n, args.seed)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    meta = {"model": args.model, "checkpoint": args.checkpoint, "data": args.data, "split": args.split}
    calibration = calibrate_star(
        model, images, targets=args.targets.replace("-", "_"), dtype=dtype, progress=not args.json, meta=meta
    )
    out = save_calibration(calibration, args.out or f"calibration/{args.model}-star")
    return {"out": str(out), **calibration.meta, "acs": calibration.acs.tolist()}


def cmd_train(args) -> dict:
    from vitprune.train.cli import run_train

    args.method_config = method_config(args)
    return run_train(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="vitprune",
        description="Make Vision Transformers cheaper, and measure it honestly.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("methods", help="list the available methods")
    add_output_arguments(p)
    p.set_defaults(run=cmd_methods)

    p = sub.add_parser("macs", help="count MACs (multiply-accumulates) from the real token counts")
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    p.add_argument("--batch", type=int, default=1, help="images counted (default: %(default)s)")
    p.set_defaults(run=cmd_macs)

    p = sub.add_parser("bench", help="throughput and latency against the dense model, measured in one run")
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    p.add_argument("--batch-sizes", default="1,64", help="comma-separated (default: %(default)s)")
    p.add_argument(
        "--precisions", default="fp32,bf16", help="fp32 and/or bf16 autocast (default: %(default)s)"
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is kept")
    p.add_argument("--runs", type=int, default=3, help="batches timed per round")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice, recorded)")
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("eval", help="top-1/top-5 accuracy over a dataset")
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an ImageFolder directory")
    p.add_argument("--split", default="test", help="split (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser(
        "calibrate", help="offline calibration a method needs (STAR: LRP prior and layer similarity)"
    )
    add_model_arguments(p)
    add_output_arguments(p)
    p.add_argument("--method", choices=("star",), default="star", help="method to calibrate for")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an ImageFolder directory")
    p.add_argument("--split", default="train", help="images are drawn from this split (default: %(default)s)")
    p.add_argument("--n", type=int, default=192, help="calibration images (paper: 192)")
    p.add_argument("--seed", type=int, default=0, help="which images are drawn")
    p.add_argument(
        "--targets",
        choices=("per-image", "first-image"),
        default="per-image",
        help="top-5 classes of each image, or of the first image for all (the authors' code)",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="LRP precision")
    p.add_argument("--out", help="output path (default: calibration/<model>-star); .safetensors + .json")
    p.set_defaults(run=cmd_calibrate)

    from vitprune.sweep.cli import add_sweep_arguments
    from vitprune.viz.cli import add_visualize_arguments

    add_sweep_arguments(sub.add_parser("sweep", help="every method at every MACs target vs dense; resumable"))
    add_visualize_arguments(
        sub.add_parser("visualize", help="token maps: kept, merged and dropped patches per block")
    )

    from vitprune.weights.cli import add_prune_arguments, run_prune

    p = sub.add_parser(
        "prune", help="DIMAP weight pruning (masks, or smaller layers with --structure neuron-head)"
    )
    for add in (add_model_arguments, add_output_arguments, add_prune_arguments):
        add(p)
    p.set_defaults(run=run_prune)

    from vitprune.train.cli import add_train_arguments

    p = sub.add_parser(
        "train", help="train or fine-tune, dense or with a method active (torchrun for many processes)"
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, help="timm model name")
    g.add_argument("--pretrained", action="store_true", help="start from timm's pretrained weights")
    g.add_argument("--checkpoint", help="start from these weights (.safetensors, or .pth with weights_only)")
    add_method_arguments(p)
    add_output_arguments(p)
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or an ImageFolder directory")
    add_train_arguments(p)
    p.set_defaults(run=cmd_train)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"vitprune {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0
