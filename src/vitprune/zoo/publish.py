"""Turn a finished ``vitprune train`` run into a zoo entry: weights plus a measured model card.

    python -m vitprune.zoo.publish runs/fmnist-vit fmnist-vit --command "vitprune train ..."

The card's accuracy is measured here on the test split (not copied from the training log), and its
MACs by ``vitprune.measure``; the weights are written atomically next to this file.
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
from vitprune.train import load_run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a vitprune train --out directory")
    ap.add_argument("name", help="zoo name, e.g. fmnist-vit")
    ap.add_argument("--command", required=True, help="the exact training command, for the card")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--notes", help="what the card needs said beside its figures")
    args = ap.parse_args(argv)

    run = load_run(args.run)
    spec, model = run.spec, run.model
    test = build_dataset(args.data, "test", model)
    loader = build_loader(test, 256)
    metrics = evaluate_macs(model, loader)  # MACs of the test images themselves, padding beside
    input_size = tuple(test.cfg["input_size"])
    arch, kwargs = zoo.architecture(spec["name"], spec["kwargs"])  # a run from a zoo model names it
    info = {
        "name": args.name,
        "model": arch,
        "kwargs": kwargs,
        **({"method": spec["method"], "method_config": spec["method_config"]} if spec["method"] else {}),
        "data": args.data,
        "input_size": list(input_size),
        "train_command": args.command,
        "epochs": run.epochs,
        "wall_time_s": round(sum(r["train_s"] for r in run.history), 1),
        "top1": metrics["top1"],
        "top5": metrics["top5"],
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
