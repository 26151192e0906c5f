"""``macs=`` targets: parse them and solve a method's knob so the model lands on them.

A target is a fraction of the dense model's MACs (a number in (0, 1]) or an absolute amount: a
number above 1 or a string such as ``"2.9G"`` / ``"2.9GMACs"`` is read as GMACs. Methods compare
at equal cost only if each solves its own knob for the same target on the same model and input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vitprune.measure.formula import dense_macs, macs_target, out_of_reach, schedule_macs
from vitprune.vit import VitSpec


def parse_macs_target(value: float | str, spec: VitSpec) -> float:
    """The target in MACs per image (see :func:`vitprune.measure.formula.macs_target`)."""
    return macs_target(value, dense_macs(spec))


def method_macs(method, spec: VitSpec) -> float:
    """Predicted MACs per image of ``method`` on the model ``spec`` describes."""
    return schedule_macs(spec, method.schedule(spec))


def closest(
    candidates: Sequence,
    cost: Callable[[object], float],
    target: float,
    value: object,
    method: str = "this method",
) -> object:
    """The candidate whose cost is nearest ``target``; an error naming the reachable range otherwise.
    The candidates include zero reduction, so the highest cost is the dense model's."""
    costs = [cost(c) for c in candidates]
    lo, hi = min(costs), max(costs)
    if not lo * 0.98 <= target <= hi * 1.02:
        raise ValueError(out_of_reach(method, value, target, lo, hi, dense=hi))
    best = min(range(len(costs)), key=lambda i: abs(costs[i] - target))
    return candidates[best]


def reach_error(method: str, value: object, target: float, lowest: float, spec: VitSpec) -> ValueError:
    """The error for a target below the ``lowest`` MACs ``method`` reaches (its range ends at dense)."""
    dense = dense_macs(spec)
    return ValueError(out_of_reach(method, value, target, lowest, dense, dense))


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
