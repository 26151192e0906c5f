"""Turn a finished ``vitprune train`` run into a zoo entry: weights plus a measured model card.

    python -m vitprune.zoo.publish runs/fmnist-vit fmnist-vit --command "vitprune train ..."

The card's accuracy (a segmenter's mean IoU and pixel accuracy, with ``"task": "segmentation"``) is
measured here on the test split (not copied from the training log), and its MACs by
``vitprune.measure``; the weights are written atomically next to this file. ``--average OTHER_RUN``
publishes the mean of the runs' weights instead (SWA: ``vitprune.train.average``).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import vitprune.zoo as zoo
from vitprune.data import build_dataset
from vitprune.data.batched import build_loader
from vitprune.files.atomic import json_bytes, write_bytes
from vitprune.files.state_dict import save_state_dict
from vitprune.measure.evaluate import evaluate, evaluate_macs
from vitprune.segment.data import segmentation_dataset
from vitprune.segment.evaluate import evaluate_segmentation
from vitprune.segment.head import is_segmenter
from vitprune.train import average_state_dicts, load_run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a vitprune train --out directory")
    ap.add_argument("name", help="zoo name, e.g. fmnist-vit")
    ap.add_argument("--command", required=True, help="the exact training command, for the card")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--notes", help="what the card needs said beside its figures")
    ap.add_argument(
        "--average",
        action="append",
        default=[],
        metavar="RUN",
        help="another run (or checkpoint) of the same model to average with RUN's weights, e.g. the end "
        "of an earlier cosine cycle (SWA, Izmailov et al. 2018); repeatable",
    )
    args = ap.parse_args(argv)

    run = load_run(args.run)
    spec, model = run.spec, run.model
    averaged = [load_run(path) for path in args.average]
    for path, other in zip(args.average, averaged, strict=True):
        if (other.spec["name"], other.spec["kwargs"]) != (spec["name"], spec["kwargs"]):
            ap.error(f"--average {path} is a {other.spec['name']} {other.spec['kwargs']}, not {args.run}'s")
    if averaged:
        states = [model.state_dict(), *(other.model.state_dict() for other in averaged)]
        model.load_state_dict(average_state_dicts(states))
    sources = [{"run": p, "epoch": other.epochs} for p, other in zip(args.average, averaged, strict=True)]
    segmenter = is_segmenter(model)
    test = (segmentation_dataset if segmenter else build_dataset)(args.data, "test", model)
    loader = build_loader(test, 256)
    # MACs of the test images themselves, padding beside
    metrics = evaluate_segmentation(model, loader) if segmenter else evaluate_macs(model, loader)
    scored = ("miou", "pixel_acc", "iou") if segmenter else ("top1", "top5")
    input_size = tuple(test.cfg["input_size"])
    arch, kwargs = zoo.architecture(spec["name"], spec["kwargs"])  # a run from a zoo model names it
    info = {
        "name": args.name,
        **({"task": "segmentation"} if segmenter else {}),
        "model": arch,
        "kwargs": kwargs,
        **({"method": spec["method"], "method_config": spec["method_config"]} if spec["method"] else {}),
        "data": args.data,
        "input_size": list(input_size),
        "train_command": args.command,
        "epochs": run.epochs,
        **({"averaged_with": sources} if sources else {}),
        "wall_time_s": round(sum(r["train_s"] for r in run.history), 1),
        **{key: metrics[key] for key in scored},
        "test_images": metrics["n"],
        "gmacs": metrics["gmacs"],
        "executed_gmacs": metrics["executed_gmacs"],
        "params": sum(p.numel() for p in model.parameters()),
        "history": [
            {"epoch": r["epoch"], "train_loss": r["train_loss"], **r.get("eval", {})} for r in run.history
        ],
        **({"notes": args.notes} if args.notes else {}),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    if hasattr(model, "sait"):  # runtime densities: say which one top1 is, and add dense mode
        info["evaluated_at"] = {"mode": model.sait.mode, "keep": model.sait.keep}
        model.sait.set(mode="dense")
        info["dense_mode"] = evaluate(model, loader)
    save_state_dict(model.state_dict(), zoo.catalog.ZOO_DIR / f"{args.name}.safetensors")
    write_bytes(zoo.catalog.ZOO_DIR / f"{args.name}.json", json_bytes(info))
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
