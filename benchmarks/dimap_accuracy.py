"""DIMAP one-shot accuracy on a trained model: module-aware thresholds (the paper) against one
global threshold (``--scope model``) and uniform per-layer magnitude (``--scope layer``), at
several fractions of the prunable weights removed, no fine-tuning (the paper's Table 3 shape).

    .venv/bin/python benchmarks/dimap_accuracy.py --name dimap_fmnist --model fmnist-swin \\
        --params 0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --structured 0.2,0.3,0.4,0.5 \\
        --runs "module 0.5 + 2 epochs fixed-mask FT=runs/dimap-ft"

Rows: the dense model, then every (scope, fraction) pair, then the structured neuron-head variant
at the fractions listed by ``--structured`` (whole MLP units and heads removed: a smaller model;
module-aware and uniform per block), then ``--runs`` (models
trained with ``vitprune train``, e.g. fixed-mask fine-tunes). Full Fashion-MNIST test set.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import accuracy_arguments, eval_split, notes, save_results, trained_runs

from vitprune.measure.evaluate import evaluate
from vitprune.models.load import load_model
from vitprune.weights import apply_masks, dimap_masks, nonzero_macs, nonzero_params, shrink

SCOPES = ("module", "layer", "model")


def measure(label: str, model, loader, dense: dict, image: torch.Tensor, **extra) -> dict:
    metrics = evaluate(model, loader, progress=False)
    params = nonzero_params(model)
    gmacs = nonzero_macs(model, image) / 1e9
    row = {
        "model": label,
        **extra,
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "top1_drop": (dense["top1"] - metrics["top1"]) if dense else 0.0,
        "nonzero_params": params,
        "params_ratio": params / dense["nonzero_params"] if dense else 1.0,
        "gmacs_theoretical": gmacs,
        "macs_ratio": gmacs / dense["gmacs_theoretical"] if dense else 1.0,
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    accuracy_arguments(ap, "fmnist-swin")
    ap.add_argument("--params", default="0.2,0.3,0.4,0.5", help="fractions of prunable weights removed")
    ap.add_argument("--structured", default="", help="neuron-head fractions, e.g. 0.2,0.5")
    ap.add_argument("--runs", nargs="*", default=[], metavar="LABEL=DIR", help="trained runs to evaluate too")
    args = ap.parse_args()
    fractions = [float(v) for v in args.params.split(",")]
    structured = [float(v) for v in filter(None, args.structured.split(","))]

    dense_model = load_model(args.model)
    test, loader = eval_split(dense_model, args.data, args.limit, args.split)
    image = test[0][0][None]
    dense = measure("dense", dense_model, loader, {}, image)
    rows = [dense]
    for fraction in fractions:
        for scope in SCOPES:
            model = copy.deepcopy(dense_model)
            apply_masks(model, dimap_masks(model, params=fraction, scope=scope))
            label = f"{scope} {fraction:g}"
            rows.append(measure(label, model, loader, dense, image, scope=scope, params=fraction))
        for scope in ("module", "layer") if fraction in structured else ():
            model = copy.deepcopy(dense_model)
            shrink(model, params=fraction, scope=scope)
            kind = f"neuron-head {scope}"
            label = f"{kind} {fraction:g}"
            rows.append(measure(label, model, loader, dense, image, scope=kind, params=fraction))
    for label, model in trained_runs(args.runs).items():
        rows.append(measure(label, model, loader, dense, image, scope="fine-tuned"))
    print(
        save_results(
            args.name, args.model, rows, test_images=len(test), split=args.split, **notes(args.notes)
        )
    )


if __name__ == "__main__":
    main()
