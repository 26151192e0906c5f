"""SaiT (reconstructed): one checkpoint evaluated at several token densities, without reloading.

    .venv/bin/python benchmarks/sait_accuracy.py --name sait_fmnist \\
        "dense/sparse trained=runs/sait-full" "no logit KD=runs/sait-no-kd"

Every model is evaluated in dense mode, at keep ratios ``--keeps`` and at mass levels ``--masses``
(input-adaptive: average MACs over the test images), all by ``model.sait.set(...)`` on one loaded
model. The first model is always ``--model`` (default: the shipped dense-only ``fmnist-vit``) with
SaiT applied off-the-shelf, the baseline that shows what dense/sparse training buys. Positional
arguments are ``label=DIR`` runs trained with ``vitprune train --method sait``.
"""

from __future__ import annotations

import argparse

import torch
from common import accuracy_arguments, eval_split, notes, save_results, trained_runs

import vitprune
from vitprune.measure import macs
from vitprune.measure.evaluate import evaluate
from vitprune.models.load import load_model


def settings(keeps: list[float], masses: list[float]) -> list[dict]:
    return [
        {"mode": "dense"},
        *({"mode": "ratio", "keep": k} for k in keeps),
        *({"mode": "mass", "mass": m} for m in masses),
    ]


def wide(measurements: list[dict]) -> list[dict]:
    """One row per model: top-1 at each setting; the MACs of a keep ratio are the same for every model
    and go in its column name, those of a mass level differ and get their own column."""
    rows: dict[str, dict] = {}
    for m in measurements:
        row = rows.setdefault(m["model"], {"model": m["model"]})
        mode, _, value = m["setting"].partition(" ")
        if mode == "mode=dense":
            row["dense"] = m["top1"]
        elif mode == "mode=ratio":
            row[f"keep {value.split('=')[1]} ({m['macs_ratio']:.2f}x MACs)"] = m["top1"]
        else:
            level = value.split("=")[1]
            row[f"mass {level}"] = m["top1"]
            row[f"mass {level} MACs"] = m["macs_ratio"]
    return list(rows.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", metavar="LABEL=DIR", help="SaiT runs from vitprune train")
    accuracy_arguments(ap, "fmnist-vit", "dense-only model, pruned off-the-shelf")
    ap.add_argument("--keeps", default="0.7,0.5,0.45,0.3")
    ap.add_argument("--masses", default="0.9,0.8,0.7")
    ap.add_argument(
        "--layer", default="3", help="pruning point(s) of the off-the-shelf baseline: 3, or 4,7 for two"
    )
    args = ap.parse_args()

    base = load_model(args.model)
    test, loader = eval_split(base, args.data, args.limit, args.split)
    images = torch.stack([test[i][0] for i in range(min(len(test), 1000))])
    dense_macs = macs(base, images).mean
    models = {
        f"{args.model} (dense-only), off-the-shelf": vitprune.apply(
            base, "sait", layers=tuple(int(v) for v in args.layer.split(","))
        ),
        **trained_runs(args.runs),
    }
    measurements = []
    for label, model in models.items():
        for setting in settings(
            [float(v) for v in args.keeps.split(",")], [float(v) for v in args.masses.split(",")]
        ):
            model.sait.set(**setting)
            cost = macs(model, images).mean
            metrics = evaluate(model, loader, progress=False)
            measurements.append(
                {
                    "model": label,
                    "setting": " ".join(f"{k}={v}" for k, v in setting.items()),
                    "top1": metrics["top1"],
                    "top5": metrics["top5"],
                    "gmacs": cost / 1e9,
                    "macs_ratio": cost / dense_macs,
                }
            )
            print(measurements[-1], flush=True)
    rows = wide(measurements)
    print(
        save_results(
            args.name,
            args.model,
            rows,
            measurements=measurements,
            test_images=len(test),
            split=args.split,
            **notes(args.notes),
        )
    )


if __name__ == "__main__":
    main()
