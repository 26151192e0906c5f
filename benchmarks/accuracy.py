"""Accuracy of token methods on a trained model at equal MACs, without fine-tuning (and of
fine-tuned runs), over the full Fashion-MNIST test set.

    .venv/bin/python benchmarks/accuracy.py --name ppt_fmnist --model fmnist-vit --macs 0.63 \\
        ppt:threshold=7e-5 tome evit --runs "ppt fine-tuned 1 epoch=runs/ppt-ft"

Each positional config is ``[label=]method[:key=value,...]``; ``--macs`` is added to every config
that gives no knob of its own, so all methods are compared at the same cost. The dense model is
always the first row. ``--runs label=DIR`` adds models trained with ``vitprune train``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import accuracy_arguments, eval_split, notes, parse_config, save_results, trained_runs

import vitprune
from vitprune import zoo
from vitprune.measure import macs
from vitprune.measure.evaluate import evaluate
from vitprune.models.load import load_model

KNOBS = {"tome": "r", "evit": "keep", "ppt": "r", "star": "r_min", "sait": "keep"}


def adaptive_star(dense, config: dict, target: float, images: torch.Tensor, steps: int = 12):
    """Adaptive STAR with ``r_min`` bisected so its average MACs on ``images`` are nearest ``target``."""
    lo, hi, best = 0.02, 1.0, None
    for _ in range(steps):
        mid = (lo + hi) / 2
        model = vitprune.apply(copy.deepcopy(dense), "star", **zoo.resolve(config), r_min=mid)
        cost = macs(model, images).mean
        if best is None or abs(cost - target) < abs(best[1] - target):
            best = (model, cost, mid)
        lo, hi = (mid, hi) if cost < target else (lo, mid)
    return best[0], best[2]


def record_branches(model) -> dict[int, list[torch.Tensor]]:
    """For PPT: after every forward, keep which images pooled at each PPT block."""
    method, seen = model.vitprune.method, {}

    def keep(_module, _inputs, _output):
        for layer, pooled in method.branches.items():
            seen.setdefault(layer, []).append(pooled.cpu())

    model.register_forward_hook(keep)
    return seen


def pruned_share(branches: dict[int, list[torch.Tensor]]) -> str:
    """Per PPT block, the share of images that pruned rather than pooled: "block:share", zeros left out."""
    shares = {layer: 1 - torch.cat(pooled).float().mean().item() for layer, pooled in branches.items()}
    return " ".join(f"{layer}:{share:.1%}" for layer, share in sorted(shares.items()) if share > 0) or "none"


def measure(label: str, model, loader, dense_gmacs: float, images: torch.Tensor) -> dict:
    method = getattr(getattr(model, "vitprune", None), "method", None)
    branches = record_branches(model) if hasattr(method, "branches") else None
    metrics = evaluate(model, loader, progress=False)
    pruned = None if branches is None else pruned_share(branches)
    gmacs = macs(model, images).mean / 1e9
    row = {
        "model": label,
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "gmacs": gmacs,
        "macs_ratio": gmacs / dense_gmacs,
    }
    if pruned is not None:
        row["pruned at blocks"] = pruned
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="[label=]method[:key=value,...]")
    accuracy_arguments(ap, "fmnist-vit")
    ap.add_argument("--macs", type=float, help="MACs target for configs without their own knob")
    ap.add_argument("--runs", nargs="*", default=[], metavar="LABEL=DIR", help="trained runs to evaluate too")
    args = ap.parse_args()

    dense = load_model(args.model)
    test, loader = eval_split(dense, args.data, args.limit, args.split)
    images = torch.stack([test[i][0] for i in range(min(len(test), 500))])
    dense_gmacs = macs(dense, images).mean / 1e9
    rows = [measure("dense", dense, loader, dense_gmacs, images)]
    for label, method, config in map(parse_config, args.configs):
        if method == "star" and config.get("adaptive") and "r_min" not in config and args.macs is not None:
            model, config["r_min"] = adaptive_star(dense, config, args.macs * dense_gmacs * 1e9, images)
        else:
            if args.macs is not None and not ({KNOBS.get(method), "macs", "rates"} & set(config)):
                config["macs"] = args.macs
            model = vitprune.apply(copy.deepcopy(dense), method, **zoo.resolve(config))
        rows.append(
            {**measure(label, model, loader, dense_gmacs, images), "config": {"method": method, **config}}
        )
    for label, model in trained_runs(args.runs).items():
        rows.append(measure(label, model, loader, dense_gmacs, images))
    for row in rows:
        row["top1_drop"] = rows[0]["top1"] - row["top1"]
    print(
        save_results(
            args.name, args.model, rows, test_images=len(test), split=args.split, **notes(args.notes)
        )
    )


if __name__ == "__main__":
    main()
