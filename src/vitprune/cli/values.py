"""Option values checked where they enter: each type names the bad value and what is allowed.

argparse prefixes the option's name (``argument --batch-size: 0 is invalid; allowed: ...``), so every
numeric or enumerated option fails in one line before any work starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable

from vitprune.measure.formula import macs_target

KWARG_INTS = ("img_size", "patch_size", "in_chans", "num_classes", "depth", "embed_dim", "num_heads")


def _number(kind: type, low: float, high: float = math.inf, low_open=False, high_open=False) -> Callable:
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    noun = "an integer" if kind is int else "a number"
    if math.isinf(high):
        allowed = f"{noun} {'>' if low_open else '>='} {low:g}"
    else:
        allowed = f"{noun} in {left}{low:g}, {high:g}{right}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not _inside(value, low, high, low_open, high_open):
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: {allowed}")
        return value

    parse.__name__ = allowed
    return parse


def _inside(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


positive_int = _number(int, 1)
natural = _number(int, 0)
positive = _number(float, 0, low_open=True)
non_negative = _number(float, 0)
fraction_removed = _number(float, 0, 1, low_open=True, high_open=True)
fraction_kept = _number(float, 0, 1, low_open=True)
smoothing = _number(float, 0, 1, high_open=True)
fraction_weight = _number(float, 0, 1)


def macs(text: str) -> float | str:
    """A ``macs=`` target: a fraction of dense MACs kept (0.63) or GMACs (``2.9G``)."""
    value = text.strip()
    target = value if value.upper().endswith(("G", "GMACS")) else _to_float(value)
    try:
        macs_target(target, math.inf)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid; allowed: a fraction of dense MACs in (0, 1] or GMACs like 2.9G"
        ) from None
    return target


def _to_float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def listed(item: Callable) -> Callable:
    """A comma-separated list, each entry read by ``item``; at least one."""

    def parse(text: str) -> list:
        try:
            items = [item(v.strip()) for v in text.split(",") if v.strip()]
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: entry {err}") from None
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a comma-separated list")
        return items

    return parse


def one_of(choices: Iterable[str]) -> Callable:
    """One of ``choices`` (for list entries; a single option uses argparse's ``choices``)."""
    allowed = tuple(choices)

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: {', '.join(allowed)}")
        return text

    return parse


def check_model_kwargs(kwargs: dict, flag: str = "--model-kwargs") -> dict:
    """``kwargs`` for ``timm.create_model``, integer sizes checked; ``ValueError`` naming ``flag``."""
    for key in KWARG_INTS:
        value = kwargs.get(key)
        if value is None:
            continue
        low = 0 if key == "num_classes" else 1
        values = value if isinstance(value, tuple | list) else (value,)  # Swin: num_heads=(3, 6, 12, 24)
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values):
            raise ValueError(
                f"{flag} {key}={value!r} is invalid; allowed: an integer >= {low}, or a tuple of them"
            )
    return kwargs
