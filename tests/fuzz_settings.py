"""Random settings for every token method: valid ones, ones that must not reduce anything, invalid ones.

A setting is drawn for one model (its depth and patch count bound the valid values). Two values are
resolved only once the model exists: a ``macs=`` target, placed relative to the cheapest setting the
method can reach on that model, and a STAR prior, built in memory as a tiny ``Calibration``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st

from vitprune.calibrate.artifact import Calibration
from vitprune.measure.formula import dense_macs
from vitprune.methods import REGISTRY
from vitprune.methods.target import method_macs
from vitprune.vit import describe

# Each method's cheapest setting of its own knob (the bound its ``macs=`` solver searches to).
# (None: as many tokens as the model has patches, capped by the method itself.)
CHEAPEST = {
    "tome": ("r", None),
    "ppt": ("r", None),
    "evit": ("keep", 1e-6),
    "topk": ("keep", 1e-6),
    "random": ("keep", 1e-6),
    "star": ("r_min", 1e-3),
    "sait": ("keep", 1e-3),
}
UNKNOWN_OPTIONS = ("ratio", "speed", "top_k", "budget")
NEEDS_CLASS_TOKEN = {"evit", "ppt", "star", "sait", "topk"}


@dataclass(frozen=True)
class MacsTarget:
    """``zone`` "reach": at least 5% above the cheapest reachable MACs (must be met); "beyond": at least
    5% below (must be refused, naming the target)."""

    zone: str
    u: float  # where in the zone, 0..1
    gmacs: str | None = None  # a unit suffix ("G", "GMACs", ...): written as absolute GMACs, else a fraction


@dataclass(frozen=True)
class Prior:
    """A random STAR calibration for ``depth`` blocks of ``patches`` patches; ``flat``: every ACS equal."""

    depth: int
    patches: int
    seed: int
    flat: bool = False

    def calibration(self) -> Calibration:
        g = torch.Generator().manual_seed(self.seed)
        acs = torch.zeros(self.depth) if self.flat else torch.rand(self.depth, generator=g)
        prior = torch.rand(self.depth, self.patches, generator=g)
        return Calibration(prior=prior, acs=acs.double(), meta={"model": "fuzz"})


@dataclass(frozen=True)
class Setting:
    """``kind`` "valid", "zero" (must equal the unpatched model) or "invalid" (``match``: in the error)."""

    kind: str
    options: dict = field(hash=False)
    match: str | None = None


def resolve(setting: Setting, method: str, model) -> tuple[dict, str | None]:
    """Concrete options for ``vitprune.apply`` and the text the error must contain (for invalid ones)."""
    options = {k: v.calibration() if isinstance(v, Prior) else v for k, v in setting.options.items()}
    target = options.get("macs")
    if isinstance(target, MacsTarget):
        options["macs"] = _macs_value(target, method, options, model)
    match = setting.match
    if match is not None and isinstance(target, MacsTarget):
        match = f"macs={options['macs']!r}"
    return options, match


def _macs_value(target: MacsTarget, method: str, options: dict, model) -> float | str:
    spec = describe(model)
    if method in NEEDS_CLASS_TOKEN and not spec.has_class_token:
        return 0.5  # refused before the target is read
    knob, value = CHEAPEST[method]
    cheapest = {k: v for k, v in options.items() if k not in ("macs", "mode")}
    cheapest[knob] = spec.num_patches if value is None else value
    dense = dense_macs(spec)
    lowest = method_macs(REGISTRY[method][0](spec, **cheapest), spec) / dense
    if target.zone == "reach":
        start = min(1.0, 1.05 * lowest)
        fraction = start + target.u * (1.0 - start)
    else:
        fraction = 0.95 * lowest * max(target.u, 1e-3)
    if target.gmacs is None:
        return fraction
    return f"{fraction * dense / 1e9:.12g}{target.gmacs}"


def invalid(key: str, values: st.SearchStrategy, base: dict | None = None) -> st.SearchStrategy:
    """Settings whose ``key`` is bad; the error must name it as ``key=value``."""
    return values.map(lambda v: Setting("invalid", {**(base or {}), key: v}, f"{key}={v!r}"))


def fixed(kind: str, options: st.SearchStrategy) -> st.SearchStrategy:
    return options.map(lambda o: Setting(kind, o))


def macs_targets(zone: str) -> st.SearchStrategy:
    suffix = st.none() | st.sampled_from(["G", "GMACs", "g", " GMACS"])
    return st.builds(MacsTarget, st.just(zone), st.floats(0, 1), suffix)


NOT_A_RATE = st.one_of(
    st.floats(max_value=0.0),
    st.floats(min_value=1.0, exclude_min=True),
    st.just(math.nan),
    st.booleans(),
    st.sampled_from(["0.5", None]),
)
BAD_MACS = st.one_of(
    st.floats(max_value=0.0),
    st.floats(min_value=1.0, exclude_min=True),  # read as GMACs: far above any tiny model's dense cost
    st.integers(max_value=0),
    st.just(math.nan),
    st.booleans(),
    st.sampled_from(["fast", "", "G", "1.2.3G", "-1G", "1e9G", [0.5]]),
)


def common_invalid(knob_value: st.SearchStrategy, knob: str, base: dict | None = None) -> st.SearchStrategy:
    """Mistakes every method must catch: unknown options, knob and target both, bad ``macs=`` values."""
    base = base or {}
    return st.one_of(
        st.sampled_from(UNKNOWN_OPTIONS).map(
            lambda k: Setting("invalid", {**base, k: 0.5}, "unknown option")
        ),
        knob_value.map(lambda v: Setting("invalid", {**base, knob: v, "macs": 0.5}, "not both")),
        invalid("macs", BAD_MACS, base),
        macs_targets("beyond").map(lambda t: Setting("invalid", {**base, "macs": t}, "macs=")),
    )


def layer_lists(depth: int) -> st.SearchStrategy:
    return st.lists(st.integers(0, depth - 1), max_size=3, unique=True)


def bad_layers(depth: int) -> st.SearchStrategy:
    return st.one_of(st.integers(min_value=depth), st.integers(max_value=-1), st.just(True), st.just(1.0))
