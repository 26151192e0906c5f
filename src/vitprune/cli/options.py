"""Command-line options shared by every subcommand: which model, which method, how to print."""

from __future__ import annotations

import argparse
import ast

import vitprune
import vitprune.cli.values as values
import vitprune.zoo as zoo
from vitprune.methods import REGISTRY
from vitprune.models.load import load_model, loaded_name
from vitprune.segment.head import is_segmenter


def literal(text: str) -> object:
    """A Python literal when ``text`` is one (13, 0.7, (3, 6, 9), True), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def key_values(pairs: list[str], flag: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: {flag} {pair!r}: expected KEY=VALUE, e.g. {flag} r=13")
        out[key.strip().replace("-", "_")] = literal(value.strip())
    return out


def model_kwargs(pairs: list[str], flag: str = "--model-kwargs") -> dict:
    """``KEY=VALUE`` pairs for ``timm.create_model``, their integer sizes checked."""
    return values.check_model_kwargs(key_values(pairs, flag), flag)


def add_data_arguments(
    parser: argparse.ArgumentParser, data: str | None = "fashion-mnist", batch_size: bool = True
) -> None:
    """Which images are evaluated or counted (and, with ``batch_size``, how they are batched)."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        default=data,
        help="'fashion-mnist', 'fashion-mnist-clutter' (one item on a cluttered 56x56 canvas) "
        "or an ImageFolder directory (default: %(default)s)",
    )
    g.add_argument("--split", default="test", help="split (default: %(default)s)")
    if batch_size:
        g.add_argument("--batch-size", type=values.positive_int, default=128, help="(default: %(default)s)")
    g.add_argument("--workers", type=values.natural, default=0, help="data loader workers")
    g.add_argument("--limit", type=values.positive_int, help="only the first N images")


MODEL_HELP = (
    "the model: a timm name (--pretrained for timm's weights), a vitprune zoo name "
    f"({', '.join(zoo.names())}), hf:PATH (a Hugging Face save_pretrained directory), or, with "
    "--checkpoint DIR, a `vitprune prune --structure` output, which carries its own architecture"
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="deit_small_patch16_224", help=MODEL_HELP + " (default: %(default)s)")
    g.add_argument(
        "--pretrained", action="store_true", help="load timm's pretrained weights (needs them cached)"
    )
    g.add_argument("--checkpoint", help="weights: .safetensors, or .pth/.pt loaded with weights_only=True")
    g.add_argument("--num-classes", type=values.positive_int, help="classifier size (default: the model's)")
    g.add_argument(
        "--model-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra timm.create_model argument, repeatable: --model-kwargs img_size=28",
    )


def add_method_arguments(parser: argparse.ArgumentParser, weights: bool = True) -> None:
    """``--method``, ``-p`` and ``--macs``; ``weights=False`` offers token methods only."""
    names = sorted(vitprune.methods()) if weights else sorted(REGISTRY)
    g = parser.add_argument_group("method")
    g.add_argument(
        "--method",
        choices=names,
        help="method to apply; resize, random and topk are baselines (a smaller input, random tokens, "
        "top-K without fusion) that take -p/--macs like the methods (default: none)",
    )
    g.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, repeatable: -p r=13 | -p keep=0.7 -p layers=3,6,9 | -p r=13 -p inflection=-0.5",
    )
    g.add_argument(
        "--macs",
        type=values.macs,
        help="MACs target solved by the method: fraction of dense (0.63) or '2.9G'",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def method_config(args: argparse.Namespace) -> dict:
    """``-p``/``--macs`` settings over those a zoo model was trained with, if ``--method`` is its method."""
    config = {**zoo.method_defaults(args.model, args.method), **key_values(args.param, "-p")}
    if args.macs is not None:
        config["macs"] = args.macs
    return config


def model_name(args: argparse.Namespace) -> str:
    """The model the options load, in words (a structured prune output names itself, not ``--model``)."""
    return loaded_name(args.model, args.checkpoint)


def build_model(args: argparse.Namespace, with_method: bool = True):
    """The model the options describe, with ``--method`` applied unless ``with_method`` is False (to a
    segmenter with ``dense=True``, so that every patch keeps a logit)."""
    kwargs = model_kwargs(args.model_kwargs)
    try:
        model = load_model(args.model, args.pretrained, args.checkpoint, args.num_classes, **kwargs)
    except TypeError as err:
        raise ValueError(f"--model-kwargs {kwargs}: not accepted by {args.model}: {err}") from err
    if not with_method:
        return model
    if not args.method:
        if args.param or args.macs is not None:
            raise SystemExit("error: -p/--macs given without --method")
        return model
    # a segmenter scores every patch: its method hands the full grid back (dense outputs)
    return vitprune.apply(model, args.method, dense=is_segmenter(model), **zoo.resolve(method_config(args)))
