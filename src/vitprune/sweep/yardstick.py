"""The ``resize`` baseline as the yardstick of a token method, in accuracy and in speed.

A dense model fed a smaller input adds no work of its own, so at equal MACs its speed is the most a
token method can reach on that model, and its accuracy the least a method must beat to be worth its
machinery. ``resize_twin`` builds that baseline at a method's MACs; ``speed_vs_resize`` puts each
method's speed as a fraction of it (timed in the same interleaved run); ``points_vs_resize`` says by
how many points of its score (top-1, or a segmenter's mean IoU: ``score_key``) each method beats or
loses to it at each MACs target of a sweep.
"""

from __future__ import annotations

import copy

from torch import nn

import vitprune
import vitprune.tokens.patch as token_patch
from vitprune.measure.formula import dense_macs
from vitprune.methods.target import method_macs
from vitprune.segment.head import is_segmenter
from vitprune.vit import UnsupportedModelError, describe

RESIZE = "resize"
SCORES = {"top1": "Top-1", "miou": "Mean-IoU"}  # a sweep row's headline score, in the order looked for
VERSUS = (
    "{score} points each method beats (+) or loses (-) to `resize` (the dense model on a smaller input) "
    "at each MACs target; the first line gives the MACs ratio resize reached (the nearest patch grid)."
)


def score_key(rows: list[dict]) -> str:
    """The score the rows of a sweep carry: ``top1``, or ``miou`` for a segmenter."""
    return next((key for key in SCORES if any(r.get(key) is not None for r in rows)), "top1")


def versus_heading(rows: list[dict]) -> str:
    """:data:`VERSUS` for the score the rows of a sweep carry."""
    return VERSUS.format(score=SCORES[score_key(rows)])


def resize_twin(dense: nn.Module, model: nn.Module, macs: float | str | None = None) -> nn.Module | None:
    """``dense`` with ``resize`` at ``macs`` (default: the MACs ``model``'s method plans), or None where
    there is nothing to compare (no token method, ``resize`` itself, a family it refuses). A segmenter's
    features are resampled to its own grid (``dense=True``), as every method's are restored."""
    if not token_patch.is_patched(model) or model.vitprune.method.name == RESIZE:
        return None
    if macs is None:
        spec = describe(model)
        macs = min(1.0, method_macs(model.vitprune.method, spec) / dense_macs(spec))
    plain = vitprune.remove(copy.deepcopy(dense))
    try:
        return vitprune.apply(plain, RESIZE, macs=macs, dense=is_segmenter(dense))
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
    """One row per method of a sweep: its score (:func:`score_key`) minus ``resize``'s at each MACs target
    both reached (positive: it beats a smaller input), with the MACs ratio ``resize`` really ran at."""
    key = score_key(rows)
    ok = [r for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    resize = {r["macs_target"]: r for r in ok if r["method"] == RESIZE}
    if not resize:
        return []
    lines = [
        {"method": f"{RESIZE} (MACs reached)"}
        | {f"{t:g}": f"{r['macs_ratio']:.3f}x" for t, r in resize.items()}
    ]
    for method in dict.fromkeys(r["method"] for r in ok if r["method"] not in (RESIZE, "dense")):
        mine = {r["macs_target"]: r[key] for r in ok if r["method"] == method}
        line = {"method": f"{method} vs resize"}
        line |= {f"{t:g}": f"{mine[t] - resize[t][key]:+.2f}" for t in resize if t in mine}
        lines.append(line)
    return lines
