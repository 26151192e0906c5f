"""``vitprune export``: a model with its token method baked in, as a ``torch.export`` program or ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import vitprune.cli.values as values
from vitprune.cli.options import (
    add_method_arguments,
    add_model_arguments,
    add_output_arguments,
    build_model,
    model_name,
)
from vitprune.data.transforms import resolve_input_size
from vitprune.deploy.export import FORMATS, export_model, run_exported

CHECK_IMAGES = 4


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitprune export``; sets ``run=run_export`` as the parser's default."""
    add_model_arguments(parser)
    add_method_arguments(parser, weights=False)
    add_output_arguments(parser)
    parser.add_argument("--format", type=values.one_of(FORMATS), default="onnx", help="onnx or pt2")
    parser.add_argument("--out", required=True, help="file to write (.onnx or .pt2)")
    parser.add_argument(
        "--batch", type=values.positive_int, default=2, help="example batch traced (any batch runs later)"
    )
    parser.set_defaults(run=run_export)


def run_export(args) -> dict:
    """Export, then run the file on fresh images and report how far it is from the PyTorch model."""
    model = build_model(args)
    size = resolve_input_size(model)
    path = export_model(model, torch.rand(args.batch, *size), Path(args.out), args.format)
    check = torch.rand(CHECK_IMAGES, *size)  # a batch size other than the one traced
    with torch.no_grad():
        difference = (run_exported(path, check) - model(check)).abs().max().item()
    return {
        "model": model_name(args),
        "method": args.method,
        "format": args.format,
        "path": str(path),
        "bytes": path.stat().st_size,
        "input": list(size),
        "max_abs_difference": difference,
    }
