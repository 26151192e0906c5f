"""Helpers shared by the benchmark scripts: machine description and atomic JSON output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from vitprune.cli.options import literal
from vitprune.data import build_dataset, build_loader
from vitprune.train import load_trained

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU: {cpu}"
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def write_json(name: str, payload: dict) -> Path:
    """Write ``results/<name>.json`` atomically (temp file, then rename)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def eval_split(model, data: str, limit: int | None, split: str = "test") -> tuple[Dataset, DataLoader]:
    """The ``split`` of ``data`` prepared for ``model`` (first ``limit`` images when given), and a loader."""
    test = build_dataset(data, split, model)
    if limit:
        test = Subset(test, range(limit))
    return test, build_loader(test, 250)


def trained_runs(entries: list[str]) -> dict[str, nn.Module]:
    """``label=DIR`` entries (a bare DIR is its own label) → the models ``vitprune train`` left there."""
    runs = {}
    for entry in entries:
        label, _, path = entry.rpartition("=")
        runs[label or path] = load_trained(path)
    return runs


def save_results(name: str, model: str, rows: list[dict], **extra) -> Path:
    """Write ``results/<name>.json``: the rows with the benchmark name, model, the command line that
    reproduces them, the machine, and any ``extra`` fields (notes, test_images, ...)."""
    command = shlex.join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    payload = {
        "benchmark": name,
        "model": model,
        "command": command,
        "machine": machine(),
        **extra,
        "rows": rows,
    }
    return write_json(name, payload)


def accuracy_arguments(ap: argparse.ArgumentParser, model: str, model_help: str | None = None) -> None:
    """The options every accuracy table takes: --name, --model, --data, --split, --limit, --notes."""
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--model", default=model, help=model_help)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument(
        "--split",
        default="test",
        help="split to evaluate ('train' to choose a setting without the test images)",
    )
    ap.add_argument("--limit", type=int, help="first N images only (for a quick check)")
    ap.add_argument("--notes", help="what the table shows, printed above it in BENCHMARKS.md")


def notes(text: str | None) -> dict:
    """``{"notes": text}`` for :func:`save_results` when there is a note, else nothing."""
    return {"notes": text} if text else {}


def parse_config(text: str) -> tuple[str, str, dict]:
    """``"label=method:key=value,key=value"`` → (label, method, config); the label defaults to ``text``.

    Values may be Python literals with commas inside brackets: ``ppt:layers=(1,2,3),r=8``.
    """
    head, _, options = text.partition(":")
    label, _, method = head.rpartition("=")
    config = {}
    for pair in filter(None, _top_level_split(options)):
        key, _, value = pair.partition("=")
        config[key] = literal(value)
    return label or text, method, config


def _top_level_split(text: str) -> list[str]:
    """``text`` split at the commas outside any brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]
