"""``vitprune visualize``: token maps of the first test images for one method."""

from __future__ import annotations

import argparse

import torch

import vitprune
import vitprune.cli.values as values
import vitprune.zoo as zoo
from vitprune.cli.options import (
    add_method_arguments,
    add_model_arguments,
    add_output_arguments,
    build_model,
    method_config,
    model_name,
)
from vitprune.data import FASHION_MNIST_NAMES, build_dataset
from vitprune.data.fashion_mnist import CLASSES
from vitprune.viz.api import save_token_maps


def add_visualize_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitprune visualize``; sets ``run=run_visualize`` as the parser's default."""
    add_model_arguments(parser)
    add_method_arguments(parser, weights=False)
    add_output_arguments(parser)
    parser.add_argument(
        "--data",
        default="fashion-mnist",
        help="'fashion-mnist', 'fashion-mnist-clutter' (one item on a cluttered 56x56 canvas) "
        "or an ImageFolder directory (default: %(default)s)",
    )
    parser.add_argument("--split", default="test", help="split the images come from (default: %(default)s)")
    parser.add_argument(
        "--images", type=values.positive_int, default=8, help="the first N images (default: %(default)s)"
    )
    parser.add_argument("--out", default="tokens.png", help="PNG to write (default: %(default)s)")
    parser.set_defaults(run=run_visualize)


def first_images(data: str, split: str, model, n: int) -> tuple[torch.Tensor, list[str]]:
    """Model inputs of the first ``n`` images of ``split`` and a name for each (index and class)."""
    dataset = build_dataset(data, split, model)
    if not 0 < n <= len(dataset):
        raise ValueError(f"--images {n}: allowed 1..{len(dataset)}")
    samples = [dataset[i] for i in range(n)]
    classes = CLASSES if data.lower() in FASHION_MNIST_NAMES else getattr(dataset, "classes", None)
    names = [f"#{i} {classes[label] if classes else label}" for i, (_, label) in enumerate(samples)]
    return torch.stack([x for x, _ in samples]), names


def run_visualize(args: argparse.Namespace) -> dict:
    """Apply ``--method`` with source tracing, run the first ``--images`` images, write ``--out``."""
    if not args.method:
        raise ValueError("visualize needs --method (one of: " + ", ".join(vitprune.methods()) + ")")
    if args.method == "resize":
        raise ValueError(
            "visualize --method resize: it keeps every patch of a smaller input grid, so there is no token "
            "map to draw; choose a method that drops or merges tokens"
        )
    model = build_model(args, with_method=False)
    config = method_config(args)
    vitprune.apply(model, args.method, trace_source=True, **zoo.resolve(config))
    inputs, names = first_images(args.data, args.split, model, args.images)
    details = ", ".join(f"{k}={v}" for k, v in config.items() if k != "prior")
    title = f"{model_name(args)} · {args.method}" + (f" ({details})" if details else "")
    path, maps = save_token_maps(model, inputs, args.out, names, title)
    return {
        "out": str(path),
        "model": model_name(args),
        "method": args.method,
        "images": len(inputs),
        "layers": [m.layer for m in maps.layers[1:]],
        "tokens_kept": [int(c) for c in maps.layers[-1].counts],
    }
