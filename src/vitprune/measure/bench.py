"""Wall-clock speed of a model: throughput (images/s) and latency (ms per batch).

The protocol follows ToMe's benchmark: random inputs already on the model's
device, eval mode, ``torch.inference_mode()``, warm-up batches discarded, and the
clock read with ``time.perf_counter`` after a CUDA synchronise so queued kernels are
counted. ``fp32`` runs without autocast; ``bf16`` runs under
``torch.autocast(device_type, dtype=torch.bfloat16)``.

Numbers from separate runs drift with machine load; :func:`compare` interleaves
models round-robin so that drift hits every model alike.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from vitprune.data.transforms import resolve_input_size
from vitprune.models.device import model_device

PRECISIONS = ("fp32", "bf16")


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision``: none for fp32, bfloat16 autocast for bf16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_times(
    model: nn.Module,
    batch_size: int,
    input_size: Sequence[int] | None = None,
    runs: int = 10,
    warmup: int = 3,
    precision: str = "fp32",
) -> list[float]:
    """Seconds taken by each of ``runs`` forward passes on one random batch, after ``warmup`` passes."""
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0, batch_size >= 1; got {runs}, {warmup}, {batch_size}")
    device = model_device(model)
    x = torch.rand(batch_size, *resolve_input_size(model, input_size), device=device)
    model.eval()
    times = []
    with torch.inference_mode(), precision_context(device, precision):
        for _ in range(warmup):
            model(x)
        _sync(device)
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - start)
    return times


def throughput(
    model: nn.Module,
    batch_size: int = 64,
    input_size: Sequence[int] | None = None,
    runs: int = 10,
    warmup: int = 3,
    precision: str = "fp32",
) -> float:
    """Images per second: all timed images divided by all timed seconds."""
    times = batch_times(model, batch_size, input_size, runs, warmup, precision)
    return batch_size * len(times) / sum(times)


def latency(
    model: nn.Module,
    batch_size: int = 1,
    input_size: Sequence[int] | None = None,
    runs: int = 20,
    warmup: int = 3,
    precision: str = "fp32",
) -> dict[str, float]:
    """Median and 90th-percentile milliseconds per batch: ``{"median_ms", "p90_ms"}``."""
    times = batch_times(model, batch_size, input_size, runs, warmup, precision)
    return _latency_ms(times)


def _latency_ms(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def bench(
    model: nn.Module,
    batch_sizes: Iterable[int] = (1, 64),
    precisions: Iterable[str] = PRECISIONS,
    input_size: Sequence[int] | None = None,
    runs: int = 10,
    warmup: int = 3,
) -> list[dict]:
    """One record per (batch size, precision), throughput and latency from the same timed passes.

    Each record: ``batch_size, precision, images_per_s, latency_ms_median,
    latency_ms_p90, runs, warmup, threads, device, input_size``.
    """
    size = resolve_input_size(model, input_size)
    device = model_device(model)
    records = []
    for batch_size in batch_sizes:
        for precision in precisions:
            times = batch_times(model, batch_size, size, runs, warmup, precision)
            lat = _latency_ms(times)
            records.append(
                {
                    "batch_size": batch_size,
                    "precision": precision,
                    "images_per_s": batch_size * len(times) / sum(times),
                    "latency_ms_median": lat["median_ms"],
                    "latency_ms_p90": lat["p90_ms"],
                    "runs": runs,
                    "warmup": warmup,
                    "threads": torch.get_num_threads(),
                    "device": str(device),
                    "input_size": list(size),
                }
            )
    return records


def compare(
    models: dict[str, nn.Module],
    batch_size: int = 64,
    input_size: Sequence[int] | None = None,
    rounds: int = 5,
    runs: int = 3,
    warmup: int = 2,
    precision: str = "fp32",
) -> dict[str, float]:
    """Images/s for several models measured in one interleaved session.

    Every model is warmed up, then each of ``rounds`` rounds times ``runs`` batches
    of every model in turn (the starting model rotates each round). A model's result
    is the median of its per-round throughputs, so a slow spell on the machine
    lowers all models alike instead of whichever happened to run during it.
    """
    if not models or rounds < 1:
        raise ValueError(f"compare() needs at least one model and rounds >= 1; got {len(models)}, {rounds}")
    names = list(models)
    for name in names:
        batch_times(models[name], batch_size, input_size, runs=1, warmup=warmup, precision=precision)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times = batch_times(models[name], batch_size, input_size, runs, warmup=0, precision=precision)
            samples[name].append(batch_size * len(times) / sum(times))
    return {name: float(np.median(values)) for name, values in samples.items()}


def speed_table(
    models: dict[str, nn.Module],
    batches: Iterable[tuple[int, int]],
    precisions: Iterable[str] = PRECISIONS,
    rounds: int = 5,
    reference: str | None = None,
) -> list[dict]:
    """Rows of :func:`compare` over ``(batch size, timed runs per round)`` pairs and precisions.

    Each row: ``model, precision, batch_size, images_per_s, ms_per_batch, speedup`` where the
    speedup is against ``reference`` (default: the first model) measured in the same rounds.
    """
    reference = reference or next(iter(models))
    rows = []
    for precision in precisions:
        for batch, runs in batches:
            ips = compare(models, batch, rounds=rounds, runs=runs, precision=precision)
            rows += [
                {
                    "model": name,
                    "precision": precision,
                    "batch_size": batch,
                    "images_per_s": value,
                    "ms_per_batch": 1000 * batch / value,
                    "speedup": value / ips[reference],
                }
                for name, value in ips.items()
            ]
    return rows
