"""``make demo``: every landed token method on the shipped ``fmnist-vit``, side by side.

A small sweep (each method solved for a few MACs targets, measured against the dense model: top-1/
top-5, GMACs from the token counts really used, images/s and batch-1 latency interleaved with the
dense model), its table, Pareto plots, and token maps of 8 test images per method. STAR uses the
offline prior shipped beside the model (or calibrates one on a few training images). Accuracy is
measured on the first ``--limit`` test images to stay within a few minutes on a 2-core CPU; the
header of the table says how many. Torch runs on one thread by default: the model is tiny, and
one thread keeps the timing steady when anything else shares the machine. Outputs go to ``demo_out/``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

import vitprune
from vitprune import zoo
from vitprune.calibrate.artifact import save_calibration
from vitprune.calibrate.star import calibrate_star, calibration_images
from vitprune.data import build_dataset
from vitprune.data.fashion_mnist import CLASSES
from vitprune.report import table
from vitprune.sweep import SweepSettings, sweep, write_reports
from vitprune.sweep_files import flat_rows
from vitprune.viz import save_token_maps

MODEL = "fmnist-vit"
METHODS = ("tome", "evit", "ppt", "star", "sait")
TARGETS = (0.8, 0.65, 0.5)
STAR_IMAGES = 32  # the paper calibrates on 192; a few are enough for a demo and take seconds
MAP_IMAGES = 8
SHOWN = [
    "method",
    "macs_target",
    "top1",
    "top5",
    "gmacs",
    "macs_ratio",
    "images_per_s",
    "speedup",
    "latency_ms",
]


def star_prior(dense: nn.Module, out: Path) -> Path:
    """The calibration shipped with the model (192 images), else one made now on a few training images."""
    shipped = zoo.ZOO_DIR / "calibration" / f"{MODEL}-star.safetensors"
    if shipped.exists():
        return shipped
    images = calibration_images(build_dataset("fashion-mnist", "train", dense), STAR_IMAGES)
    calibration = calibrate_star(dense, images, dtype=torch.float32, progress=False, meta={"model": MODEL})
    return save_calibration(calibration, out / "star-prior")


def token_maps(dense: nn.Module, settings: SweepSettings, target: float, out: Path) -> list[Path]:
    """One PNG per method: its tokens after each reducing block on the first test images."""
    test = build_dataset(settings.data, "test", dense)
    inputs = torch.stack([test[i][0] for i in range(MAP_IMAGES)])
    names = [f"#{i} {CLASSES[int(test.labels[i])]}" for i in range(MAP_IMAGES)]
    paths = []
    for method in settings.methods:
        config = {"prior": settings.star_prior} if method == "star" else {}
        model = vitprune.apply(copy.deepcopy(dense), method, macs=target, trace_source=True, **config)
        title = f"{settings.model} · {method} at {target:g}× dense MACs"
        paths.append(save_token_maps(model, inputs, out / f"tokens-{method}.png", names, title)[0])
    return paths


def run_demo(dense: nn.Module, name: str, out: Path, limit: int, targets=TARGETS) -> None:
    """Sweep, tables, plots and token maps of ``dense`` (called ``name``) into ``out``; print them."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    methods = [m for m in METHODS if m in vitprune.methods()]
    prior = star_prior(dense, out) if "star" in methods else None
    settings = SweepSettings(
        model=name,
        methods=methods,
        macs=list(targets),
        limit=limit,
        star_prior=str(prior) if prior else None,
        threads=torch.get_num_threads(),
    )
    test = build_dataset(settings.data, "test", dense)
    payload = sweep(dense, test, settings, out / "sweep")
    reports = write_reports(out / "sweep", payload)
    maps = token_maps(dense, settings, min(targets), out)
    n = payload["rows"][0]["n"]
    print(
        f"\n{name} on Fashion-MNIST: top-1/top-5 (%) on the first {n} of {len(test)} test images "
        f"(a subset, to keep the demo short); CPU fp32, torch threads: {torch.get_num_threads()}, "
        f"images/s at batch {settings.batch}, latency at batch 1, speedup against dense measured alongside.\n"
    )
    print(table(flat_rows(payload), SHOWN))
    print(f"\nplots: {', '.join(reports['plots'])}")
    print(
        f"token maps ({MAP_IMAGES} test images, at {min(targets):g}× dense MACs): {', '.join(map(str, maps))}"
    )
    print(f"tables: {reports['markdown']}, {reports['csv']}, {reports['json']}")
    print(f"demo wall time: {time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vitprune.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=5000, help="test images evaluated (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = ap.parse_args(argv)
    if MODEL not in zoo.names():
        raise SystemExit(
            f"demo: the zoo model {MODEL!r} is not shipped in this checkout yet "
            f"(shipped: {zoo.names() or 'none'}); it is added with `python -m vitprune.zoo.publish`."
        )
    torch.set_num_threads(args.threads)
    run_demo(zoo.load(MODEL), MODEL, Path(args.out), args.limit)


if __name__ == "__main__":
    main()
