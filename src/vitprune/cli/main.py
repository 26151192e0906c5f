"""``vitprune`` command line: thin wrappers that parse, call the library, and print."""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from tqdm import tqdm

import vitprune
import vitprune.cli.values as values
import vitprune.tokens.patch as token_patch
from vitprune.cli.options import (
    MODEL_HELP,
    add_data_arguments,
    add_method_arguments,
    add_model_arguments,
    add_output_arguments,
    build_model,
    method_config,
    model_name,
)
from vitprune.cli.report import print_table
from vitprune.measure.bench import PRECISIONS
from vitprune.segment.head import is_segmenter

# One torch.compile of ToMe on fmnist-vit, batch 1, fp32, on this project's busy 2-core CPU (another
# four jobs running): Python wrapper 369 s, C++ wrapper 412 s.
COMPILE_TIME = {False: "6 min", True: "7 min"}
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


def _method(model, args) -> str | None:
    """The method the model runs: ``--method``, else the one a zoo model was trained and loads with."""
    return args.method or (model.vitprune.method.name if token_patch.is_patched(model) else None)


def _dataset(args, model, segmenter: bool = False):
    """``--data``'s ``--split`` (its label maps for a segmenter), its first ``--limit`` images."""
    from vitprune.data import build_dataset
    from vitprune.segment.data import segmentation_dataset

    dataset = (segmentation_dataset if segmenter else build_dataset)(args.data, args.split, model)
    if args.limit:
        dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    return dataset


def _macs(model, args, batch: int):
    """MACs of the ``--data`` images, ``batch`` per forward; without ``--data``, of one random batch,
    which only a model whose token counts do not depend on the images may use."""
    from vitprune.data.batched import build_loader
    from vitprune.measure.macs import macs, metered

    if args.data is None:
        method = model.vitprune.method if token_patch.is_patched(model) else None
        if getattr(method, "per_image_counts", False):
            raise ValueError(
                f"{method.name} as set keeps a different number of tokens per image, so its MACs depend "
                f"on the images: give --data (e.g. --data fashion-mnist) to count the real ones"
            )
        return macs(model, _input(model, batch))
    loader = build_loader(_dataset(args, model), batch, workers=args.workers)
    with torch.inference_mode(), metered(model) as meter:
        for images, _ in loader:
            model(images)
    return meter.report()


def cmd_macs(args) -> dict:
    model = build_model(args)
    report = _macs(model, args, args.batch)
    shape = list(_input(model, 1).shape[1:])
    return {"model": model_name(args), "method": _method(model, args), "input": shape, **report.as_dict()}


def _bench_models(args) -> dict:
    """What ``bench`` times, the reference first: the dense model (for a structured prune output, the
    architecture it was pruned from: speed and MACs do not depend on the weights), the pruned model,
    and the model with ``--method``."""
    from vitprune.models.saved import shrunk_directory, stock_model
    from vitprune.sweep.yardstick import resize_twin

    model = build_model(args)
    plain = vitprune.remove(build_model(args, with_method=False))  # DIMAP is not removable
    shrunk = shrunk_directory(args.checkpoint) if args.checkpoint else None
    models = {"dense": plain} if shrunk is None else {"dense": stock_model(shrunk).eval(), "pruned": plain}
    if args.method:
        models[args.method] = model
        # the yardstick: the dense model on a smaller input at the method's MACs, timed in the same run
        twin = None if shrunk else resize_twin(plain, model, args.macs)
        if twin is not None:
            models["resize"] = twin
    return models


def _timed(models: dict, args) -> list[dict]:
    """``speed_table`` rows, one (precision, batch size) step at a time behind a progress bar on stderr."""
    from vitprune.measure.bench import speed_table

    timed = models
    if args.compile:
        options = {"cpp_wrapper": True} if args.cpp_wrapper else None
        timed = {name: torch.compile(m, options=options) for name, m in models.items()}
        wrapper = "the C++ wrapper" if args.cpp_wrapper else "the Python wrapper"
        print(
            f"vitprune bench: compiling {', '.join(models)} with torch.compile ({wrapper}) on the first call "
            f"of each batch size and precision: {len(models) * len(args.batch_sizes) * len(args.precisions)} "
            f"compilations; one took {COMPILE_TIME[bool(args.cpp_wrapper)]} for ToMe on fmnist-vit on a busy "
            "2-core CPU (less on a quiet or larger machine)",
            file=sys.stderr,
        )
    steps = [(p, b) for p in args.precisions for b in args.batch_sizes]
    rows = []
    for precision, batch in tqdm(steps, desc="bench", unit="step", file=sys.stderr, disable=None):
        rows += speed_table(timed, [(batch, args.runs)], [precision], args.rounds)
    return rows


def cmd_bench(args) -> dict:
    from vitprune.measure.verdict import break_even
    from vitprune.sweep.yardstick import speed_vs_resize

    if args.cpp_wrapper and not args.compile:
        raise ValueError("--cpp-wrapper is a torch.compile option: add --compile")
    models = _bench_models(args)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    rows = speed_vs_resize(_timed(models, args))
    reports = {}
    for row in rows:
        key = (row["model"], row["batch_size"])
        if key not in reports:
            reports[key] = _macs(models[row["model"]], args, row["batch_size"])
        row["gmacs"], row["executed_gmacs"] = reports[key].mean / 1e9, reports[key].executed_mean / 1e9
    compiled = ("cpp-wrapper" if args.cpp_wrapper else True) if args.compile else False
    result = {
        "model": model_name(args),
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "compiled": compiled,
        "rows": rows,
    }
    subject = args.method or ("pruned" if "pruned" in models else None)
    if subject:  # plain words where the method loses to dense, with the measured break-even batch
        result["break_even"] = break_even(rows, subject)
        result["verdict"] = {precision: v["says"] for precision, v in result["break_even"].items()}
    return result


def cmd_eval(args) -> dict:
    """Top-1/top-5 and MACs of ``--data``; under torchrun each rank takes its share of the images and
    every count is summed over ranks (the one-process result); a headless encoder gets its MACs. A
    segmenter gets mean IoU and pixel accuracy instead, and with ``--method`` the fidelity of its
    restored patch features to its own dense features."""
    from vitprune.data.batched import build_loader
    from vitprune.measure.evaluate import evaluate_macs
    from vitprune.measure.shards import join, my_share
    from vitprune.segment.evaluate import evaluate_segmentation

    join()
    model = build_model(args)
    segmenter = is_segmenter(model)
    dataset = _dataset(args, model, segmenter)
    loader = build_loader(dataset, args.batch_size, sampler=my_share(len(dataset)), workers=args.workers)
    progress = not args.json and os.environ.get("RANK", "0") == "0"
    if segmenter:
        reference = build_model(args, with_method=False) if args.method else None
        metrics = evaluate_segmentation(
            model, loader, reference, precision=args.precision, progress=progress, combine=True
        )
    else:
        metrics = evaluate_macs(model, loader, precision=args.precision, progress=progress, combine=True)
    return {"model": model_name(args), "method": _method(model, args), "data": args.data, **metrics}


def cmd_calibrate(args) -> dict:
    from vitprune.calibrate.artifact import save_calibration
    from vitprune.calibrate.star import calibrate_star, calibration_images
    from vitprune.data import build_dataset

    model = build_model(args, with_method=False)
    images = calibration_images(build_dataset(args.data, args.split, model), args.n, args.seed)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    meta = {"model": model_name(args), "checkpoint": args.checkpoint, "data": args.data, "split": args.split}
    calibration = calibrate_star(
        model, images, targets=args.targets.replace("-", "_"), dtype=dtype, progress=not args.json, meta=meta
    )
    out = save_calibration(calibration, args.out or f"calibration/{args.model}-star")
    return {"out": str(out), **calibration.meta, "acs": calibration.acs.tolist()}


def cmd_train(args) -> dict:
    from vitprune.train.cli import resumed_args, run_train

    args = resumed_args(args)  # --resume RUN: the run's own options where not given again
    args.method_config = method_config(args)
    return run_train(args)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``vitprune eval: error: argument --limit: '0' is invalid; ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = Parser(
        prog="vitprune",
        description="Make Vision Transformers cheaper, and measure it honestly.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("methods", help="list the available methods")
    add_output_arguments(p)
    p.set_defaults(run=cmd_methods)

    p = sub.add_parser("macs", help="count MACs (multiply-accumulates) from the real token counts")
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    add_data_arguments(p, data=None, batch_size=False)
    p.add_argument(
        "--batch", type=values.positive_int, default=1, help="images per forward (default: %(default)s)"
    )
    p.set_defaults(run=cmd_macs)

    p = sub.add_parser(
        "bench",
        help="throughput and latency against the dense model, measured in one run; a token method is also "
        "timed against resize (the dense model on a smaller input) at its MACs: vs_resize, its speed as "
        "a fraction of that limit",
    )
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    add_data_arguments(p, data=None, batch_size=False)
    sizes, precisions = values.listed(values.positive_int), values.listed(values.one_of(PRECISIONS))
    p.add_argument("--batch-sizes", type=sizes, default="1,64", help="comma-separated (default: %(default)s)")
    p.add_argument(
        "--precisions",
        type=precisions,
        default="fp32,bf16" if torch.cuda.is_available() else "fp32",
        help="fp32 and/or bf16 autocast, comma-separated (default: %(default)s; bf16 only by default on a "
        "GPU: a CPU without bf16 units runs it about 10x slower)",
    )
    p.add_argument(
        "--rounds",
        type=values.positive_int,
        default=5,
        help="interleaved rounds, each model timed once per round; the median is kept (default: %(default)s)",
    )
    p.add_argument(
        "--runs", type=values.positive_int, default=3, help="batches timed per round (default: %(default)s)"
    )
    p.add_argument("--threads", type=values.positive_int, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="time torch.compile'd dense and method models (compiled against compiled, same run)",
    )
    p.add_argument(
        "--cpp-wrapper",
        action="store_true",
        help="with --compile: Inductor's C++ wrapper (options={'cpp_wrapper': True}) calls the kernels "
        "from C++ instead of Python; at batch 1 on the CPU that is most of a small model's overhead "
        "(longer compile)",
    )
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser(
        "eval", help="top-1/top-5 accuracy over a dataset (a segmenter: mean IoU and pixel accuracy)"
    )
    for add in (add_model_arguments, add_method_arguments, add_output_arguments):
        add(p)
    add_data_arguments(p)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser(
        "calibrate", help="offline calibration a method needs (STAR: LRP prior and layer similarity)"
    )
    add_model_arguments(p)
    add_output_arguments(p)
    p.add_argument("--method", choices=("star",), default="star", help="method to calibrate for")
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="'fashion-mnist', 'fashion-mnist-clutter' (one item on a cluttered 56x56 canvas) "
        "or an ImageFolder directory (default: %(default)s)",
    )
    p.add_argument("--split", default="train", help="images are drawn from this split (default: %(default)s)")
    p.add_argument("--n", type=values.positive_int, default=192, help="calibration images (paper: 192)")
    p.add_argument("--seed", type=values.natural, default=0, help="which images are drawn")
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
    words = "token maps: kept, merged and dropped patches per block"
    add_visualize_arguments(
        sub.add_parser(
            "visualize",
            help=words,
            description=f"Draw {words}, for the first --images images of --data, as one PNG (--out).",
        )
    )

    from vitprune.deploy.cli import add_export_arguments

    words = "the model, token method baked in, as ONNX or a torch.export .pt2"
    add_export_arguments(
        sub.add_parser(
            "export",
            help=words,
            description=f"Write {words} (dynamic batch dimension), then run the file on a fresh batch and "
            "print its largest difference from PyTorch.",
        )
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
    g.add_argument("--model", help=MODEL_HELP + " (required unless --resume names a run)")
    g.add_argument("--pretrained", action="store_true", help="start from timm's pretrained weights")
    g.add_argument("--checkpoint", help="start from these weights (.safetensors, or .pth with weights_only)")
    add_method_arguments(p, weights=False)  # DIMAP: `vitprune prune`, then train its output
    add_output_arguments(p)
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="'fashion-mnist', 'fashion-mnist-clutter' (one item on a cluttered 56x56 canvas) "
        "or an ImageFolder directory (default: %(default)s)",
    )
    add_train_arguments(p)
    p.set_defaults(run=cmd_train, verb_parser=p)
    for action in sub._choices_actions:  # every verb's --help opens with what it does
        verb = sub.choices[action.dest]
        verb.description = verb.description or f"{action.help[0].upper()}{action.help[1:]}."
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv  # `train --resume RUN` tells the options given again from the run's own
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"vitprune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (train has said where its checkpoint is)
        if args.command != "train":
            print(f"vitprune {args.command}: interrupted", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":  # under torchrun every rank ran; one prints
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0
