"""``make demo``: every token method on the shipped ``clutter-vit-196`` (one Fashion-MNIST item near
native resolution on a cluttered 56×56 canvas, 14×14 = 196 patches: DeiT's token count, with a
background to drop, the regime the papers work in), side by side, with the shipped SaiT checkpoint
``clutter-vit-196-sait`` beside it; the same methods on ``fmnist-vit-196`` (the same architecture on
upscaled, frame-filling items) as a second table; then DIMAP weight pruning on the shipped
``fmnist-swin`` and, on the shipped segmenter ``clutter-seg-196``, every method with the full patch grid
restored, scored by mean IoU (each skipped with a note while its model is not shipped).

A small sweep (each method solved for a few MACs targets, measured against the dense model: top-1/
top-5, GMACs from the token counts really used, images/s and batch-1 latency: per target, every
method, dense and ``resize`` timed interleaved in one run), its table, Pareto plots, and token maps
of 8 test canvases per method. The three baselines run beside the methods (``resize``: the dense model
on a smaller input; ``random``; ``topk``); under each table one line per method gives the top-1 points
it beats or loses to ``resize`` at each target, and its speed is also timed as a fraction of
``resize``'s. The second table is accuracy only: its model has the main one's architecture, so the
same token counts cost the same time. STAR uses the offline prior shipped beside each model (or
calibrates one on a few training images). DIMAP prunes ``fmnist-swin`` one-shot (module scope, no
fine-tuning) at 30% and 50% of its prunable weights, next to uniform magnitude pruning at 50% (the
paper's Table 3 baseline). Accuracy is measured on the first ``--limit`` (main sweep),
``--second-limit`` (``fmnist-vit-196`` sweep and SaiT), ``--dimap-images`` (DIMAP) and ``--seg-limit``
(segmentation) test images to stay within a few minutes on a 2-core CPU; the output says how many.
Torch runs on two threads by default (the sweeps need both to finish in a few minutes); ``--threads
1`` keeps the timing steadier when anything else shares the machine. Outputs go to ``demo_out/`` (the
``fmnist-vit-196`` sweep in ``demo_out/fmnist-vit-196/``); the last line gives the wall time of each
part. ``--limit 200 --second-limit 100 --dimap-images 200 --seg-limit 50`` is a quick check of the
whole path.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

import vitprune
import vitprune.zoo as zoo
from vitprune.calibrate.artifact import save_calibration
from vitprune.calibrate.star import calibrate_star, calibration_images
from vitprune.cli.report import table
from vitprune.data import build_dataset
from vitprune.data.batched import build_loader
from vitprune.data.fashion_mnist import CLASSES
from vitprune.files.atomic import json_bytes, write_bytes
from vitprune.measure.evaluate import evaluate
from vitprune.segment.data import segmentation_dataset
from vitprune.sweep.files import COLUMNS, flat_rows, present_columns
from vitprune.sweep.run import SweepSettings, machine, method_config, sweep, write_reports
from vitprune.sweep.yardstick import RESIZE, points_vs_resize, versus_heading
from vitprune.viz.api import save_token_maps
from vitprune.viz.segmentation import save_segmentation_maps
from vitprune.weights.counting import example_images
from vitprune.weights.dimap import apply_masks, dimap_masks
from vitprune.weights.report import THEORETICAL, totals

CLUTTER = "fashion-mnist-clutter"
MODEL = "clutter-vit-196"  # the main table: 196 patches, as DeiT-S at 224, an item on clutter
SECOND = "fmnist-vit-196"  # the second table: the same architecture on upscaled, frame-filling items
DATA = {MODEL: CLUTTER, SECOND: "fashion-mnist"}
WHAT = {  # one sentence under each table: what its images favour
    MODEL: "One item near native resolution (28-42 px) on a cluttered canvas: most patches are "
    "background, as on ImageNet, so dropping tokens the class token ignores can cost little",
    SECOND: "Its 28x28 items upscaled 2x fill the frame and make neighbouring tokens near-copies, which "
    "favours merging and a smaller input and leaves pruning no background to drop",
}
SAIT = "clutter-vit-196-sait"
SWIN = "fmnist-swin"
SEGMENTER = "clutter-seg-196"  # a segmenter on clutter-vit-196's backbone: dense outputs scored by mean IoU
METHODS = ("tome", "evit", "ppt", "star", "sait")
BASELINES = ("resize", "random", "topk")  # yardsticks: a smaller input, random tokens, top-K (no fusion)
TARGETS = (0.8, 0.65, 0.5)
DIMAP_FRACTIONS = (0.3, 0.5)  # of the prunable weights (qkv, proj, fc1, fc2), removed
STAR_IMAGES = 32  # the paper calibrates on 192; a few are enough for a demo and take seconds
MAP_IMAGES = 8
SEGMENTATION_IMAGES = 4  # canvases in each method's segmentation figure
# Throughput batch, timing rounds and test-image defaults keep `make demo` under 8 minutes on a 2-core
# AVX2 CPU with every method and baseline timed against dense and resize (one interleaved run per target,
# median of 5 rounds); `vitprune sweep` takes any.
BATCH = 16
ROUNDS = 5
# Rows compare by ratios timed in one run (each target's rows interleaved with dense and resize), not by raw
# throughputs or latencies, which come from different runs for different targets.
SHOWN = [c for c in COLUMNS if c not in ("status", "setting", "n", "images_per_s", "latency_ms")]
SEGMENTATION_SHOWN = ["method", "macs_target", "miou", "pixel_acc", "fidelity", "gmacs", "macs_ratio"]


def star_prior(dense: nn.Module, name: str, out: Path) -> str:
    """The calibration shipped with ``name`` (by name), else one made now on a few training images."""
    if zoo.calibration(name) is not None:
        return name
    images = calibration_images(build_dataset(DATA[name], "train", dense), STAR_IMAGES)
    calibration = calibrate_star(dense, images, dtype=torch.float32, progress=False, meta={"model": name})
    return str(save_calibration(calibration, out / "star-prior"))


def print_tables(payload: dict, shown: list[str], plots: list[str]) -> None:
    """A sweep's table (the columns of ``shown`` it has), each method's points against ``resize`` under
    it, and where its plots are."""
    rows = flat_rows(payload)
    print(table(rows, present_columns(rows, shown)))
    versus = points_vs_resize(rows)
    if versus:
        print(f"\n{versus_heading(rows)}\n")
        print(table(versus))
    print(f"\nplots: {', '.join(plots)}")


def token_maps(dense: nn.Module, settings: SweepSettings, target: float, out: Path) -> list[Path]:
    """One PNG per method: its tokens after each reducing block on the first test images."""
    test = build_dataset(settings.data, "test", dense)
    inputs = torch.stack([test[i][0] for i in range(MAP_IMAGES)])
    names = [f"#{i} {CLASSES[int(test.labels[i])]}" for i in range(MAP_IMAGES)]
    paths = []
    for method in settings.methods:
        if method == RESIZE:  # every patch of a smaller grid is kept: no token map to draw
            continue
        config = method_config(method, settings)
        model = vitprune.apply(copy.deepcopy(dense), method, macs=target, trace_source=True, **config)
        title = f"{settings.model} · {method} at {target:g}× dense MACs"
        paths.append(save_token_maps(model, inputs, out / f"tokens-{method}.png", names, title)[0])
    return paths


def run_demo(dense: nn.Module, name: str, out: Path, limit: int, targets=TARGETS, speed=True) -> None:
    """Sweep, tables, plots and token maps of ``dense`` (called ``name``) into ``out``; print them."""
    out.mkdir(parents=True, exist_ok=True)
    methods = [m for m in METHODS + BASELINES if m in vitprune.methods()]
    settings = SweepSettings(
        model=name,
        data=DATA[name],
        methods=methods,
        macs=list(targets),
        limit=limit,
        batch=BATCH,
        rounds=ROUNDS,
        speed=speed,
        star_prior=star_prior(dense, name, out) if "star" in methods else None,
        threads=torch.get_num_threads(),
    )
    test = build_dataset(settings.data, "test", dense)
    payload = sweep(dense, test, settings, out / "sweep")
    reports = write_reports(out / "sweep", payload)
    maps = token_maps(dense, settings, min(targets), out)
    n = payload["rows"][0]["n"]
    timing = (
        f"CPU fp32, torch threads: {torch.get_num_threads()}; the speedup at batch {settings.batch} and at "
        f"batch 1 (latency_speedup) against dense, and vs_resize against resize at the same target, each "
        f"target's rows timed interleaved in one run"
        if speed
        else f"accuracy only: {MODEL}'s table times the same architecture"
    )
    print(
        f"\n{name} on {settings.data}, methods applied without fine-tuning: top-1/top-5 (%) on the first "
        f"{n} of {len(test)} test images (a subset, to keep the demo short); {timing}. {WHAT[name]}.\n"
    )
    print_tables(payload, SHOWN, reports["plots"])
    print(
        f"token maps ({MAP_IMAGES} test images, at {min(targets):g}× dense MACs): {', '.join(map(str, maps))}"
    )
    print(f"tables: {reports['markdown']}, {reports['csv']}, {reports['json']}")


def run_sait(out: Path, limit: int, targets=TARGETS) -> None:
    """The shipped dense/sparse-trained SaiT checkpoint at dense mode and at each MACs target."""
    if SAIT not in zoo.names():
        return
    model = zoo.load(SAIT)
    test = build_dataset(CLUTTER, "test", model)
    n = min(limit, len(test))
    loader = build_loader(test, 250, sampler=range(n))
    rows = []
    for target in (None, *targets):
        if target is None:
            model.sait.set(mode="dense")
        else:
            vitprune.apply(model, "sait", layers=model.sait.layers, macs=target)
        metrics = evaluate(model, loader, progress=False)
        rows.append(
            {
                "mode": "dense" if target is None else f"ratio keep={model.sait.keep:.3f}",
                "macs_target": target or 1.0,
                "top1": metrics["top1"],
                "top5": metrics["top5"],
            }
        )
    notes = (
        f"{SAIT}: SaiT (reconstructed) after dense/sparse training, one checkpoint at several densities "
        f"(compare the sait rows above: the dense-only model pruned off-the-shelf); top-1/top-5 (%) on "
        f"the first {n} test canvases"
    )
    write_bytes(out / "sait.json", json_bytes({"benchmark": "demo_sait", "notes": notes, "rows": rows}))
    print(f"\n{notes}\n")
    print(table(rows))


def segmentation_maps(
    dense: nn.Module, settings: SweepSettings, methods: list[str], target: float, test, out: Path
) -> list[Path]:
    """One PNG per token method of ``methods``: a few test canvases, their truth, dense's prediction,
    the tokens left and the prediction from the restored grid."""
    inputs, truth = next(iter(build_loader(test, SEGMENTATION_IMAGES)))
    names = [*CLASSES, "background"]
    paths = []
    for method in methods:
        if method == RESIZE:  # every patch of a smaller grid is kept: no token map to draw
            continue
        config = method_config(method, settings)
        model = vitprune.apply(
            copy.deepcopy(dense), method, macs=target, dense=True, trace_source=True, **config
        )
        title = f"{settings.model} · {method} at {target:g}× dense MACs: prediction from the restored grid"
        path = out / f"segmentation-{method}.png"
        paths.append(save_segmentation_maps(model, dense, inputs, truth, path, names, title))
    return paths


def run_segmentation(out: Path, limit: int, targets=TARGETS) -> None:
    """Every method and baseline on the shipped segmenter: mean IoU, pixel accuracy and the fidelity of
    the restored patch features against GMACs, and predicted maps beside the tokens for a few canvases."""
    if SEGMENTER not in zoo.names():
        shipped = ", ".join(zoo.names()) or "none"
        print(f"\nSegmentation: skipped, the zoo has no {SEGMENTER!r} yet (shipped: {shipped}).")
        return
    dense = zoo.load(SEGMENTER)
    prior = MODEL if zoo.calibration(MODEL) is not None else None
    settings = SweepSettings(
        model=SEGMENTER,
        data=CLUTTER,
        methods=[m for m in METHODS + BASELINES if m in vitprune.methods()],
        macs=list(targets),
        limit=limit,
        speed=False,  # the backbone's speed is the classifier's, timed in the main table
        star_prior=prior,
    )
    test = segmentation_dataset(CLUTTER, "test", dense)
    payload = sweep(dense, test, settings, out / "sweep", progress=False)
    reports = write_reports(out / "sweep", payload)
    ok = {r["method"] for r in payload["rows"] if r["status"] == "ok" and r["macs_target"] == min(targets)}
    swept = [m for m in settings.methods if m in ok]
    maps = segmentation_maps(dense, settings, swept, min(targets), test, out)
    n = payload["rows"][0]["n"]
    print(
        f"\n{SEGMENTER} (a linear head on every patch, upsampled to pixels) on {CLUTTER}, every method with "
        f"the full patch grid restored (dense outputs), no fine-tuning: mean IoU over 11 classes and pixel "
        f"accuracy (%) on the first {n} of {len(test)} test canvases, fidelity = mean cosine of each "
        f"restored patch feature to the dense model's; STAR uses {MODEL}'s calibration.\n"
    )
    print_tables(payload, SEGMENTATION_SHOWN, reports["plots"])
    where = ", ".join(map(str, maps))
    print(f"segmentation maps ({SEGMENTATION_IMAGES} canvases, at {min(targets):g}× dense MACs): {where}")


def dimap_rows(dense: nn.Module, loader, fractions=DIMAP_FRACTIONS) -> list[dict]:
    """Dense, DIMAP (module scope) at each fraction removed, uniform magnitude at the largest."""
    images = example_images(dense)
    base = totals(dense, images)
    variants = [("dense", None, "")] + [("DIMAP", f, "module") for f in fractions]
    variants.append(("uniform magnitude", max(fractions), "layer"))
    rows = []
    for label, fraction, scope in variants:
        model = dense
        if fraction is not None:
            model = apply_masks(copy.deepcopy(dense), dimap_masks(dense, params=fraction, scope=scope))
        metrics = evaluate(model, loader, progress=False)
        counts = totals(model, images)
        rows.append(
            {
                "model": label if fraction is None else f"{label} {fraction:.0%}",
                "scope": scope,
                "prunable_removed": fraction or 0.0,
                "top1": metrics["top1"],
                "top5": metrics["top5"],
                "nonzero_params": counts["nonzero_params"],
                "params_ratio": counts["nonzero_params"] / base["nonzero_params"],
                "gmacs_theoretical": counts["theoretical_macs"] / 1e9,
                "macs_ratio": counts["theoretical_macs"] / base["theoretical_macs"],
            }
        )
    return rows


def run_dimap(out: Path, images: int) -> None:
    """One-shot DIMAP on the shipped ``fmnist-swin``, or a one-line note while it is not shipped."""
    if SWIN not in zoo.names():
        print(f"\nDIMAP: skipped, the zoo has no {SWIN!r} yet (shipped: {', '.join(zoo.names()) or 'none'}).")
        return
    dense = zoo.load(SWIN)
    test = build_dataset("fashion-mnist", "test", dense)
    n = min(images, len(test))
    rows = dimap_rows(dense, build_loader(test, 250, sampler=range(n)))
    notes = (
        f"{SWIN}, one-shot weight pruning without fine-tuning; top-1/top-5 (%) on the first {n} of "
        f"{len(test)} test images (a subset, to keep the demo short). Parameters and MACs are "
        f"nonzero-aware, {THEORETICAL}."
    )
    payload = {
        "benchmark": "demo_dimap",
        "model": SWIN,
        "command": f"-m vitprune.demo --dimap-images {images}",
        "machine": machine(),
        "notes": notes,
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / "dimap.json", json_bytes(payload))
    print(f"\nDIMAP (He et al., ICLR 2024) on {notes}\n")
    print(table(rows))
    print(f"\ntable: {out / 'dimap.json'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vitprune.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    ap.add_argument(
        "--limit", type=int, default=500, help=f"test images in the {MODEL} sweep (default: %(default)s)"
    )
    ap.add_argument(
        "--second-limit",
        type=int,
        default=300,
        help=f"test images in the {SECOND} sweep and canvases in the SaiT table; 0 skips both "
        f"(default: %(default)s)",
    )
    ap.add_argument(
        "--dimap-images", type=int, default=1000, help="test images for DIMAP (default: %(default)s)"
    )
    ap.add_argument(
        "--seg-limit",
        type=int,
        default=150,
        help=f"test canvases for the {SEGMENTER} table; 0 skips it (default: %(default)s)",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    args = ap.parse_args(argv)
    for name in (MODEL, SECOND):
        if name not in zoo.names():
            raise SystemExit(
                f"demo: the zoo model {name!r} is not shipped in this checkout yet "
                f"(shipped: {zoo.names() or 'none'}); it is added with `python -m vitprune.zoo.publish`."
            )
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    parts = [(MODEL, lambda: run_demo(zoo.load(MODEL), MODEL, out, args.limit))]
    if args.second_limit > 0:
        parts.append((f"{SAIT} table", lambda: run_sait(out, args.second_limit)))
        parts.append(
            (SECOND, lambda: run_demo(zoo.load(SECOND), SECOND, out / SECOND, args.second_limit, speed=False))
        )
    parts.append(("DIMAP", lambda: run_dimap(out, args.dimap_images)))
    if args.seg_limit > 0:
        parts.append((SEGMENTER, lambda: run_segmentation(out / SEGMENTER, args.seg_limit)))
    start = time.perf_counter()
    spent = []
    for label, part in parts:
        began = time.perf_counter()
        part()
        spent.append(f"{label} {time.perf_counter() - began:.0f} s")
    print(f"\ndemo wall time: {time.perf_counter() - start:.0f} s ({', '.join(spent)})")


if __name__ == "__main__":
    main()
