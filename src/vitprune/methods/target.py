"""``macs=`` targets: parse them and solve a method's knob so the model lands on them.

A target is a fraction of the dense model's MACs (a number in (0, 1]) or an absolute amount: a
number above 1 or a string such as ``"2.9G"`` / ``"2.9GMACs"`` is read as GMACs. Methods compare
at equal cost only if each solves its own knob for the same target on the same model and input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vitprune.measure.formula import dense_macs, macs_target, schedule_macs
from vitprune.vit import VitSpec


def parse_macs_target(value: float | str, spec: VitSpec) -> float:
    """The target in MACs per image (see :func:`vitprune.measure.formula.macs_target`)."""
    return macs_target(value, dense_macs(spec))


def method_macs(method, spec: VitSpec) -> float:
    """Predicted MACs per image of ``method`` on the model ``spec`` describes."""
    return schedule_macs(spec, method.schedule(spec))


def closest(candidates: Sequence, cost: Callable[[object], float], target: float, value: object) -> object:
    """The candidate whose cost is nearest ``target``; an error naming the reachable range otherwise."""
    costs = [cost(c) for c in candidates]
    lo, hi = min(costs), max(costs)
    if not lo * 0.98 <= target <= hi * 1.02:
        raise ValueError(
            f"macs={value!r} ({target / 1e9:.3f} GMACs) is out of reach for this method: "
            f"{lo / 1e9:.3f}..{hi / 1e9:.3f} GMACs"
        )
    best = min(range(len(costs)), key=lambda i: abs(costs[i] - target))
    return candidates[best]


def bisect(cost: Callable[[float], float], lo: float, hi: float, target: float, steps: int = 40) -> float:
    """Knob in [lo, hi] whose cost is nearest ``target``, for a cost that grows with the knob.

    Token counts are integers, so the cost is a step function: bisect to the crossing, then take
    whichever side of it is nearer the target.
    """
    for _ in range(steps):
        mid = (lo + hi) / 2
        if cost(mid) < target:
            lo = mid
        else:
            hi = mid
    return lo if abs(cost(lo) - target) < abs(cost(hi) - target) else hi
