"""Each method's setting space on one model: valid, zero-reduction and invalid settings, with hypothesis."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cpu_limits import BF16_ATTENTION
from fuzz_models import FAMILY_DRAWS, VitConfig, vit_configs
from fuzz_settings import (
    NOT_A_RATE,
    Prior,
    Setting,
    bad_layers,
    common_invalid,
    fixed,
    invalid,
    layer_lists,
    macs_targets,
)
from hypothesis import strategies as st

RATE = st.floats(1e-6, 1.0) | st.just(1)
THRESHOLD = st.just(0.0) | st.floats(1e-9, 1e-1) | st.just(math.inf)
BAD_COUNT = st.integers(max_value=-1) | st.floats() | st.just(True) | st.just("2")


def _one_bad(values: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """A list of ``values`` with one ``bad`` element inserted: ``(list, bad)``."""
    return st.tuples(st.lists(values, max_size=3), bad, st.integers(0, 3)).map(
        lambda t: ([*t[0][: t[2]], t[1], *t[0][t[2] :]], t[1])
    )


def tome(vit: VitConfig) -> dict[str, st.SearchStrategy]:
    n, depth = vit.num_patches, vit.depth
    count = st.integers(0, n)
    schedule = st.fixed_dictionaries({"r": count, "inflection": st.floats(-1.0, 1.0)})  # ToMe's ramp
    r = st.fixed_dictionaries({"r": count | st.lists(count, max_size=depth)}) | schedule
    outside = (
        st.floats(1.0, exclude_min=True) | st.floats(max_value=-1.0, exclude_max=True) | st.just(math.nan)
    )
    return {
        "valid": fixed(
            "valid",
            st.tuples(r, st.fixed_dictionaries({}, optional={"prop_attn": st.booleans()})).map(
                lambda t: {**t[0], **t[1]}
            ),
        )
        | fixed("valid", st.fixed_dictionaries({"macs": macs_targets("reach")})),
        "zero": fixed(
            "zero",
            st.sampled_from([{"r": 0}, {"r": [0] * depth}, {"r": 0, "inflection": 0.5}, {"macs": 1.0}]),
        ),
        "invalid": st.one_of(
            invalid("r", BAD_COUNT),
            _one_bad(st.integers(0, n), st.integers(max_value=-1))
            .filter(lambda t: len(t[0]) <= depth)
            .map(lambda t: Setting("invalid", {"r": t[0]}, f"r={t[1]!r}")),
            st.lists(count, min_size=depth + 1, max_size=depth + 3).map(
                lambda v: Setting("invalid", {"r": v}, f"{len(v)} entries")
            ),
            st.tuples(count, outside).map(
                lambda t: Setting("invalid", {"r": t[0], "inflection": t[1]}, f"inflection={t[1]!r}")
            ),
            st.tuples(count, st.floats(-1.0, 1.0)).map(lambda t: Setting("invalid", {"r": t}, "ambiguous")),
            common_invalid(count, "r"),
        ),
    }


def evit(vit: VitConfig, extra: dict | None = None) -> dict[str, st.SearchStrategy]:
    """EViT's settings; ``extra``: its own optional options (EViT's ``fuse``, random's ``seed``; top-K
    has none), which also serves the baselines that share its schedule."""
    depth = vit.depth
    layers = layer_lists(depth)
    extra = {"fuse": st.booleans()} if extra is None else extra
    per_layer = layers.flatmap(
        lambda ls: st.lists(RATE, min_size=len(ls), max_size=len(ls)).map(lambda k: {"layers": ls, "keep": k})
    )
    scalar = st.fixed_dictionaries({"keep": RATE}, optional={"layers": layers, **extra})
    targeted = st.fixed_dictionaries({"macs": macs_targets("reach")}, optional={"layers": layers, **extra})
    return {
        "valid": fixed("valid", scalar | per_layer | targeted),
        "zero": fixed("zero", st.sampled_from([{"keep": 1.0}, {"keep": 0.5, "layers": []}, {"macs": 1.0}])),
        "invalid": st.one_of(
            invalid("keep", NOT_A_RATE),
            bad_layers(depth).map(lambda v: Setting("invalid", {"keep": 0.5, "layers": [v]}, f"layer {v!r}")),
            st.tuples(layers, st.lists(RATE, min_size=1, max_size=4))
            .filter(lambda t: len(t[0]) != len(t[1]))
            .map(lambda t: Setting("invalid", {"layers": t[0], "keep": t[1]}, f"{len(t[1])} keep rates")),
            common_invalid(RATE, "keep"),
        ),
    }


def ppt(vit: VitConfig) -> dict[str, st.SearchStrategy]:
    n, depth = vit.num_patches, vit.depth
    count = st.integers(0, n)
    layers = layer_lists(depth)
    per_layer = layers.flatmap(
        lambda ls: st.lists(count, min_size=len(ls), max_size=len(ls)).map(lambda r: {"layers": ls, "r": r})
    )
    options = {"threshold": THRESHOLD}
    scalar = st.fixed_dictionaries({"r": count}, optional={"layers": layers, **options})
    targeted = st.fixed_dictionaries({"macs": macs_targets("reach")}, optional={"layers": layers, **options})
    per_layer = st.tuples(per_layer, THRESHOLD).map(lambda t: {**t[0], "threshold": t[1]})
    return {
        "valid": fixed("valid", scalar | per_layer | targeted),
        "zero": fixed("zero", st.sampled_from([{"r": 0}, {"layers": []}, {"macs": 1.0}])),
        "invalid": st.one_of(
            invalid("r", BAD_COUNT),
            invalid("threshold", st.floats(max_value=0, exclude_max=True) | st.just(math.nan) | st.just("1")),
            bad_layers(depth).map(lambda v: Setting("invalid", {"layers": [v]}, f"layer {v!r}")),
            st.tuples(layers, st.lists(count, min_size=1, max_size=4))
            .filter(lambda t: len(t[0]) != len(t[1]))
            .map(lambda t: Setting("invalid", {"layers": t[0], "r": t[1]}, f"{len(t[1])} values of r")),
            common_invalid(count, "r"),
        ),
    }


def star(vit: VitConfig) -> dict[str, st.SearchStrategy]:
    depth = vit.depth
    prior = st.builds(Prior, st.just(depth), st.just(vit.num_patches), st.integers(0, 99), st.booleans())
    rates = st.lists(RATE, min_size=depth, max_size=depth)
    alpha = st.floats(0.0, 1.0)
    knob = st.fixed_dictionaries({}, optional={"r_min": RATE}) | rates.map(lambda r: {"rates": r})
    calibrated = st.tuples(prior, alpha, st.booleans(), knob).map(
        lambda t: {"prior": t[0], "alpha": t[1], "adaptive": t[2], **t[3]}
    )
    targeted = st.tuples(prior, alpha, macs_targets("reach")).map(
        lambda t: {"prior": t[0], "alpha": t[1], "macs": t[2]}
    )
    bare = st.tuples(rates, st.booleans()).map(lambda t: {"alpha": 1.0, "rates": t[0], "adaptive": t[1]})
    ones = [1.0] * depth
    zero = prior.flatmap(
        lambda p: st.sampled_from(
            [{"prior": p, "rates": ones}, {"prior": p, "r_min": 1.0}, {"prior": p, "macs": 1.0}]
            + [{"alpha": 1.0, "rates": ones, "adaptive": True}]
        )
    )
    base = prior.map(lambda p: {"prior": p})
    wrong_prior = st.builds(
        Prior, st.integers(2, 12).filter(lambda d: d != depth), st.just(vit.num_patches), st.just(0)
    )
    return {
        "valid": fixed("valid", calibrated | targeted | bare),
        "zero": fixed("zero", zero),
        "invalid": st.one_of(
            base.flatmap(lambda b: invalid("alpha", NOT_A_RATE.filter(lambda v: v != 0.0), b)),
            base.flatmap(lambda b: invalid("r_min", NOT_A_RATE, b)),
            base.flatmap(lambda b: invalid("rates", NOT_A_RATE.map(lambda v: [v] * depth), b)).map(
                lambda s: Setting("invalid", s.options, f"rates={s.options['rates'][0]!r}")
            ),
            st.lists(RATE, min_size=1, max_size=14)
            .filter(lambda r: len(r) != depth)
            .map(lambda r: Setting("invalid", {"alpha": 1.0, "rates": r}, f"{len(r)} rates")),
            wrong_prior.map(lambda p: Setting("invalid", {"prior": p}, "needs prior")),
            alpha.filter(lambda a: a < 1).map(
                lambda a: Setting("invalid", {"alpha": a, "r_min": 0.5}, "prior=")
            ),
            st.just(Setting("invalid", {"alpha": 1.0}, "give explicit rates=")),
            base.map(lambda b: Setting("invalid", {**b, "macs": 0.7, "adaptive": True}, "adaptive=True")),
            base.flatmap(lambda b: common_invalid(RATE, "r_min", b)),
        ),
    }


def sait(vit: VitConfig) -> dict[str, st.SearchStrategy]:
    depth = vit.depth
    where = st.fixed_dictionaries({}, optional={"layer": st.integers(0, depth - 1)}) | layer_lists(depth).map(
        lambda ls: {"layers": ls}
    )
    density = st.one_of(
        st.just({"mode": "dense"}),
        st.fixed_dictionaries({"keep": RATE}),
        st.fixed_dictionaries({"tau": st.floats(0.0, 4.0)}),
        st.fixed_dictionaries({"mass": RATE}),
        st.fixed_dictionaries(
            {"mode": st.sampled_from(["ratio", "value", "mass"])},
            optional={"keep": RATE, "tau": st.floats(0.0, 4.0), "mass": RATE},
        ),
        st.fixed_dictionaries({"macs": macs_targets("reach")}),
    )
    zero = st.sampled_from([{"mode": "dense"}, {"keep": 1.0}, {"tau": 0.0}, {"macs": 1.0}])
    return {
        "valid": fixed("valid", st.tuples(where, density).map(lambda t: {**t[0], **t[1]})),
        "zero": fixed("zero", st.tuples(where, zero).map(lambda t: {**t[0], **t[1]})),
        "invalid": st.one_of(
            invalid("mode", st.sampled_from(["sparse", "Ratio", "", 1])),
            invalid("keep", NOT_A_RATE.filter(lambda v: v is not None)),
            invalid("mass", NOT_A_RATE.filter(lambda v: v is not None)),
            invalid("tau", st.floats(max_value=0, exclude_max=True) | st.just(math.nan) | st.just(True)),
            bad_layers(depth).map(lambda v: Setting("invalid", {"layer": v}, f"layer {v!r}")),
            st.sampled_from(["value", "mass", "dense"]).map(
                lambda m: Setting("invalid", {"mode": m, "macs": 0.5}, f"not {m!r}")
            ),
            common_invalid(RATE, "keep"),
        ),
    }


SPACES = {
    "tome": tome,
    "evit": evit,
    "ppt": ppt,
    "star": star,
    "sait": sait,
    "topk": lambda vit: evit(vit, extra={}),
    "random": lambda vit: evit(vit, extra={"seed": st.integers(0, 2**31 - 2)}),
}


@dataclass(frozen=True)
class Case:
    """One generated case: a method, a model, a setting, and the batch it runs on."""

    method: str
    vit: VitConfig
    setting: Setting
    batch: int
    bf16: bool
    trace_source: bool
    image_seed: int


KINDS = ("valid",) * 4 + ("zero",) + ("invalid",) * 2


@st.composite
def cases(draw, method: str) -> Case:
    vit = draw(vit_configs(families=FAMILY_DRAWS))
    setting = draw(SPACES[method](vit)[draw(st.sampled_from(KINDS))])
    return Case(
        method=method,
        vit=vit,
        setting=setting,
        batch=draw(st.integers(1, 8)),
        bf16=draw(st.sampled_from([False, False, True] if BF16_ATTENTION else [False])),
        trace_source=draw(st.booleans()),
        image_seed=draw(st.integers(0, 2**16)),
    )
