"""The ``resize`` baseline as the yardstick of a token method, in accuracy and in speed.

A dense model fed a smaller input adds no work of its own, so at equal MACs its speed is the most a
token method can reach on that model, and its accuracy the least a method must beat to be worth its
machinery. ``resize_twin`` builds that baseline at a method's MACs; ``speed_vs_resize`` puts each
method's speed as a fraction of it (timed in the same interleaved run); ``points_vs_resize`` says by
how many top-1 points each method beats or loses to it at each MACs target of a sweep.
"""

from __future__ import annotations

import copy

from torch import nn

import vitprune
import vitprune.tokens.patch as token_patch
from vitprune.measure.formula import dense_macs
from vitprune.methods.target import method_macs
from vitprune.vit import UnsupportedModelError, describe

RESIZE = "resize"
VERSUS = (
    "Top-1 points each method beats (+) or loses (-) to `resize` (the dense model on a smaller input) "
    "at each MACs target; the first line gives the MACs ratio resize reached (the nearest patch grid)."
)


def resize_twin(dense: nn.Module, model: nn.Module, macs: float | str | None = None) -> nn.Module | None:
    """``dense`` with ``resize`` at ``macs`` (default: the MACs ``model``'s method plans), or None where
    there is nothing to compare (no token method, ``resize`` itself, a family it refuses)."""
    if not token_patch.is_patched(model) or model.vitprune.method.name == RESIZE:
        return None
    if macs is None:
        spec = describe(model)
        macs = min(1.0, method_macs(model.vitprune.method, spec) / dense_macs(spec))
    plain = vitprune.remove(copy.deepcopy(dense))
    try:
        return vitprune.apply(plain, RESIZE, macs=macs)
    except (UnsupportedModelError, ValueError):
        return None


def speed_vs_resize(rows: list[dict], name: str = RESIZE) -> list[dict]:
    """``speed_table`` rows with ``vs_resize``: images/s over ``name``'s in the same step (precision,
    batch size) of the same run; rows of a step without ``name`` are left as they are."""
    ips = {(r["precision"], r["batch_size"]): r["images_per_s"] for r in rows if r["model"] == name}
    out = []
    for row in rows:
        reference = ips.get((row["precision"], row["batch_size"]))
        out.append(row if reference is None else {**row, "vs_resize": row["images_per_s"] / reference})
    return out


def points_vs_resize(rows: list[dict]) -> list[dict]:
    """One row per method of a sweep: its top-1 minus ``resize``'s at each MACs target both reached
    (positive: it beats a smaller input), with the MACs ratio ``resize`` really ran at."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("top1") is not None]
    resize = {r["macs_target"]: r for r in ok if r["method"] == RESIZE}
    if not resize:
        return []
    lines = [
        {"method": f"{RESIZE} (MACs reached)"}
        | {f"{t:g}": f"{r['macs_ratio']:.3f}x" for t, r in resize.items()}
    ]
    for method in dict.fromkeys(r["method"] for r in ok if r["method"] not in (RESIZE, "dense")):
        mine = {r["macs_target"]: r["top1"] for r in ok if r["method"] == method}
        line = {"method": f"{method} vs resize"}
        line |= {f"{t:g}": f"{mine[t] - resize[t]['top1']:+.2f}" for t in resize if t in mine}
        lines.append(line)
    return lines
