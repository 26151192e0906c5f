"""One cell of a sweep: accuracy (a segmenter's mean IoU and feature fidelity), MACs per evaluated
image, and speed against the dense model."""

from __future__ import annotations

import torch
from torch import nn

from vitprune.measure.bench import compare
from vitprune.measure.evaluate import evaluate_macs
from vitprune.segment.evaluate import evaluate_segmentation
from vitprune.segment.head import is_segmenter

SPEED_ROUNDS = 3  # interleaved rounds per speed measurement (median kept)
LATENCY_RUNS = 10  # batch-1 forwards timed per round


def accuracy_and_macs(model: nn.Module, loader, reference: nn.Module | None = None) -> dict:
    """Top-1/top-5 over ``loader`` and the mean GMACs of exactly those images, useful and executed (an
    input-adaptive method's padding included), and the useful fraction of the dense model's, from one pass.
    A segmenter gets mean IoU and pixel accuracy instead, and against ``reference`` (its dense model)
    the fidelity of its restored patch features. Under torchrun every count is summed over ranks."""
    if is_segmenter(model):
        return evaluate_segmentation(model, loader, reference, progress=False, combine=True)
    return evaluate_macs(model, loader, progress=False, combine=True)


def speeds(models: dict[str, nn.Module], batch: int, rounds=SPEED_ROUNDS) -> dict[str, dict]:
    """Throughput at ``batch`` and latency at batch 1 of every model in ``models`` (which holds
    ``"dense"``), all interleaved in one run, each as a ratio to dense and, where ``models`` holds
    ``"resize"`` (the baseline at the same MACs), to resize (``vs_resize``, ``latency_vs_resize``: the
    method's speed as a fraction of that limit). One run per MACs target times dense and resize once
    for every method instead of once per method."""
    ips = compare(models, batch, rounds=rounds, runs=1)
    single = compare(models, 1, rounds=rounds, runs=LATENCY_RUNS)
    out = {}
    for key in models:
        result = {
            "batch": batch,
            "threads": torch.get_num_threads(),
            "images_per_s": ips[key],
            "dense_images_per_s": ips["dense"],
            "speedup": ips[key] / ips["dense"],
            "latency_ms": 1000 / single[key],
            "dense_latency_ms": 1000 / single["dense"],
            "latency_speedup": single[key] / single["dense"],
        }
        if "resize" in models and key not in ("dense", "resize"):
            result["vs_resize"] = ips[key] / ips["resize"]
            result["latency_vs_resize"] = single[key] / single["resize"]
        out[key] = result
    return out


def setting(method: object) -> str:
    """The knob a ``macs=`` target was solved into, in short: ``keep=0.512``, ``r=[3, 3, 2]``, a grid."""
    for name in ("per_layer", "rs", "rates", "keep", "size"):
        value = getattr(method, name, None)
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            return f"{name}=[{', '.join(_short(v) for v in value)}]"
        if value is not None:
            return f"{name}={_short(value)}"
    return ""


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
