"""``vitprune sweep``: every method at every MACs target, against the dense model, resumable.

Each cell applies a method with ``macs=target`` to a copy of the dense model and measures top-1/top-5
on the test split (or its first ``limit`` images), the mean GMACs of those images from the token
counts really used. Then, optionally, speed: per MACs target one interleaved run times throughput and
batch-1 latency of the dense model, every method's cell at that target and ``resize`` at it, so every
ratio in a row (to dense, to resize) and every comparison between the rows of a target come from one run.
``sweep.json`` is rewritten atomically after every cell; with ``resume`` finished cells are kept and
skipped, so an interrupted sweep resumed gives the same JSON as an uninterrupted one (timing numbers
live apart, in each row's ``speed``). CSV, Markdown and the plots are written at the end.
"""

from __future__ import annotations

import copy
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import timm
import torch
from torch import nn
from tqdm import tqdm

import vitprune
import vitprune.sweep.measure as measure
import vitprune.tokens.patch as token_patch
import vitprune.zoo as zoo
from vitprune.data.batched import build_loader
from vitprune.measure.shards import my_share, rank_and_world
from vitprune.methods import REGISTRY
from vitprune.models.load import loaded_name
from vitprune.segment.head import is_segmenter
from vitprune.sweep.files import read_payload, write_payload, write_tables
from vitprune.sweep.plots import write_plots
from vitprune.sweep.yardstick import RESIZE, resize_twin
from vitprune.vit import UnsupportedModelError

DENSE = "dense"
# Settings that must match for ``resume`` to reuse a cell; methods and targets may change.
SAME_FOR_RESUME = (
    "model",
    "checkpoint",
    "data",
    "split",
    "limit",
    "eval_batch",
    "batch",
    "speed",
    "star_prior",
)


@dataclass
class SweepSettings:
    model: str
    data: str = "fashion-mnist"
    methods: list[str] = field(
        default_factory=lambda: ["tome", "evit", "ppt", "star", "sait", "resize", "random", "topk"]
    )
    macs: list[float] = field(default_factory=lambda: [0.9, 0.8, 0.7, 0.6, 0.5])
    split: str = "test"
    limit: int | None = None
    batch: int = 64
    rounds: int = measure.SPEED_ROUNDS  # interleaved timing rounds per cell (median kept)
    eval_batch: int = 256
    speed: bool = True
    star_prior: str | None = None
    checkpoint: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    threads: int | None = None  # torch threads the speed was measured with (None: torch's choice)

    def command(self, out: Path) -> str:
        """The ``vitprune sweep`` command that reproduces this sweep."""
        parts = [f"vitprune sweep --model {self.model} --data {self.data}"]
        parts += [f"--model-kwargs {k}={v}" for k, v in self.model_kwargs.items()]
        parts.append(f"--methods {','.join(self.methods)} --macs {','.join(map(str, self.macs))}")
        for flag, value in (("--checkpoint", self.checkpoint), ("--star-prior", self.star_prior)):
            if value:
                parts.append(f"{flag} {value}")
        if self.limit:
            parts.append(f"--limit {self.limit}")
        if self.threads:
            parts.append(f"--threads {self.threads}")
        if self.rounds != measure.SPEED_ROUNDS:
            parts.append(f"--rounds {self.rounds}")
        parts.append(f"--batch {self.batch} --out {out}" + ("" if self.speed else " --no-speed"))
        return " ".join(parts)


def method_config(method: str, settings: SweepSettings) -> dict:
    """Options every cell of ``method`` gets besides ``macs=``: those a zoo model was trained with when
    ``method`` is its method (the pruning point of ``fmnist-vit-sait``), STAR's prior, SaiT's mode."""
    config = zoo.method_defaults(settings.model, method)
    if method == "star":
        config.update(zoo.resolve({"prior": settings.star_prior}))
    if method == "sait":
        config["mode"] = "ratio"
    return config


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> dict:
    """Where the sweep ran (speed numbers only compare on the same machine)."""
    cpu = cpu_name()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU: {cpu}"
    return {
        "device": device,
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def grid(settings: SweepSettings) -> tuple[list[tuple[str, float]], list[str]]:
    """Cells to run (the dense reference first) and a note for each method that is skipped."""
    unknown = sorted(set(settings.methods) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown token method(s) {unknown}; available: {sorted(REGISTRY)}")
    notes, cells = [], [(DENSE, 1.0)]
    for method in settings.methods:
        if method == "star" and not settings.star_prior:
            notes.append("star skipped: no --star-prior (make one with `vitprune calibrate --method star`)")
            continue
        cells += [(method, float(target)) for target in settings.macs]
    return cells, notes


def _resumable(previous: dict | None, settings: SweepSettings, out: Path) -> dict | None:
    if previous is None:
        return None
    old = previous["settings"]
    changed = [k for k in SAME_FOR_RESUME if old.get(k) != getattr(settings, k)]
    if changed:
        raise ValueError(
            f"{out}/sweep.json was made with different {', '.join(changed)}; "
            "use another --out or run without --resume to start over"
        )
    return previous


def cell_model(dense: nn.Module, method: str, target: float, settings: SweepSettings) -> nn.Module:
    """A copy of ``dense`` with ``method`` at ``target`` (the dense model itself for the dense cell); a
    segmenter's hands the full grid back (``dense=True``), as its users run it."""
    if method == DENSE:
        return dense
    config = method_config(method, settings)
    return vitprune.apply(copy.deepcopy(dense), method, macs=target, dense=is_segmenter(dense), **config)


def run_cell(dense: nn.Module, method: str, target: float, loader, settings: SweepSettings) -> dict:
    """The row of one (method, MACs target) cell: accuracy and MACs (speed is timed per target)."""
    row = {"method": method, "macs_target": target}
    try:
        model = cell_model(dense, method, target, settings)
    except ValueError as err:
        return {**row, "status": "unreachable", "error": str(err)}
    except UnsupportedModelError as err:  # e.g. resize on BEiT: the reason, and the sweep goes on
        return {**row, "status": "refused", "error": str(err)}
    row["setting"] = "" if method == DENSE else measure.setting(model.vitprune.method)
    reference = None if method == DENSE else dense  # a segmenter's feature fidelity is to dense
    return {**row, "status": "ok", **measure.accuracy_and_macs(model, loader, reference)}


def untimed(rows: list[dict], target: float) -> list[dict]:
    """Rows still without a speed that the run at ``target`` times: its working cells (and dense)."""
    return [
        r
        for r in rows
        if r["status"] == "ok" and "speed" not in r and (r["macs_target"] == target or r["method"] == DENSE)
    ]


def time_target(dense: nn.Module, rows: list[dict], target: float, settings: SweepSettings) -> None:
    """Time ``rows`` (cells at ``target``) in one interleaved run with dense and ``resize`` at ``target``,
    and store each one's ``speed``: every method's ratios then come from the same run."""
    models = {DENSE: dense}
    for row in rows:
        models[row["method"]] = cell_model(dense, row["method"], target, settings)
    if RESIZE not in models:
        twin = next((m for k, m in models.items() if k != DENSE), None)
        twin = None if twin is None else resize_twin(dense, twin, target)
        if twin is not None:
            models[RESIZE] = twin
    timed = measure.speeds(models, settings.batch, settings.rounds)
    for row in rows:
        row["speed"] = timed[row["method"]]


def sweep(
    dense: nn.Module,
    dataset,
    settings: SweepSettings,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Run every cell not already in ``out/sweep.json`` (with ``resume``); return the payload.

    The ``dense`` row is the model without any token method, also when ``dense`` arrived with one.
    """
    out = Path(out)
    if token_patch.is_patched(dense):  # a zoo model trained with a method loads with it: not dense
        dense = vitprune.remove(copy.deepcopy(dense))
    cells, notes = grid(settings)
    for note in notes:
        print(f"vitprune sweep: {note}", file=sys.stderr)
    previous = _resumable(read_payload(out), settings, out) if resume else None
    done = {(r["method"], r["macs_target"]): r for r in (previous or {}).get("rows", [])}
    extra = [key for key in done if key not in cells]  # kept from an earlier, wider grid
    payload = {
        "benchmark": "sweep",
        "model": loaded_name(settings.model, settings.checkpoint),
        "data": settings.data,
        "command": settings.command(out),
        "settings": asdict(settings),
        "machine": (previous or {}).get("machine") or machine(),
        "notes": " ".join(notes),
        "rows": [],
    }
    n = min(settings.limit or len(dataset), len(dataset))
    loader = build_loader(dataset, settings.eval_batch, sampler=my_share(n))  # torchrun: this rank's share
    main = rank_and_world()[0] == 0  # the rank that writes
    dense.eval()
    targets = [float(t) for t in settings.macs] if settings.speed and main else []  # rank 0 alone times
    initial = sum(key in done for key in cells)
    bar = tqdm(total=len(cells) + len(targets), initial=initial, disable=not (progress and main), unit="step")

    def save() -> None:
        payload["rows"] = [done[key] for key in cells + extra if key in done]
        if main:
            write_payload(out, payload)

    with bar:
        for method, target in cells:
            if (method, target) in done:
                continue
            bar.set_postfix_str(f"{method} @ {target:g}")
            done[(method, target)] = run_cell(dense, method, target, loader, settings)
            save()
            bar.update()
        for target in targets:  # then the speed: one interleaved run per target, dense and resize included
            rows = untimed([done[key] for key in cells if key in done], target)
            if rows:
                bar.set_postfix_str(f"timing @ {target:g}")
                time_target(dense, rows, target, settings)
                save()
            bar.update()
    save()  # also when every cell was already done: notes and settings refreshed
    return payload


def write_reports(out: str | Path, payload: dict) -> dict:
    """CSV, Markdown and PNG plots of a finished sweep; their paths."""
    out = Path(out)
    csv_path, md_path = write_tables(out, payload)
    return {"json": str(out / "sweep.json"), "csv": str(csv_path), "markdown": str(md_path)} | {
        "plots": [str(p) for p in write_plots(out, payload)]
    }
