"""Command-line options shared by every subcommand: which model, which method, how to print."""

from __future__ import annotations

import argparse
import ast

import vitprune
from vitprune import zoo
from vitprune.models.load import load_model


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


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="deit_small_patch16_224", help="timm model name (default: %(default)s)")
    g.add_argument(
        "--pretrained", action="store_true", help="load timm's pretrained weights (needs them cached)"
    )
    g.add_argument("--checkpoint", help="weights: .safetensors, or .pth/.pt loaded with weights_only=True")
    g.add_argument("--num-classes", type=int, help="classifier size (default: the model's)")
    g.add_argument(
        "--model-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra timm.create_model argument, repeatable: --model-kwargs img_size=28",
    )


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("method")
    g.add_argument(
        "--method", choices=sorted(vitprune.methods()), help="token method to apply (default: none)"
    )
    g.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, repeatable: -p r=13 | -p keep=0.7 -p layers=3,6,9 | -p 'r=(13,-0.5)'",
    )
    g.add_argument(
        "--macs", type=literal, help="MACs target solved by the method: fraction of dense (0.63) or '2.9G'"
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def method_config(args: argparse.Namespace) -> dict:
    """``-p``/``--macs`` settings over those a zoo model was trained with, if ``--method`` is its method."""
    config = {**zoo.method_defaults(args.model, args.method), **key_values(args.param, "-p")}
    if args.macs is not None:
        config["macs"] = args.macs
    return config


def build_model(args: argparse.Namespace, with_method: bool = True):
    """The model the options describe, with ``--method`` applied unless ``with_method`` is False."""
    kwargs = key_values(args.model_kwargs, "--model-kwargs")
    model = load_model(args.model, args.pretrained, args.checkpoint, args.num_classes, **kwargs)
    if not with_method:
        return model
    if not args.method:
        if args.param or args.macs is not None:
            raise SystemExit("error: -p/--macs given without --method")
        return model
    return vitprune.apply(model, args.method, **zoo.resolve(method_config(args)))
