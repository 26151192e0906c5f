"""One API over token and weight methods: ``vitprune.apply(model, "dimap", ...)``, composition with every
token method, and one meaning of ``macs=`` (MACs kept: a fraction of dense, or GMACs) on each method."""

import copy

import pytest
import torch
from conftest import fmnist_like

import vitprune
from vitprune.calibrate.artifact import Calibration
from vitprune.measure import macs
from vitprune.weights import nonzero_macs

TOKEN_METHODS = ("tome", "evit", "ppt", "star", "sait")
DEPTH = 6


def _options(method: str) -> dict:
    """What each token method needs besides its knob (STAR: a prior; SaiT: a pruning point)."""
    if method == "star":
        g = torch.Generator().manual_seed(0)
        acs = torch.linspace(0.9, 0.5, DEPTH)
        return {"prior": Calibration(prior=torch.rand(DEPTH, 49, generator=g), acs=acs, meta={"model": "t"})}
    return {"layer": 1} if method == "sait" else {}


KNOBS = {
    "tome": {"r": 3},
    "evit": {"keep": 0.7},
    "ppt": {"threshold": 0.0},
    "star": {},
    "sait": {"keep": 0.6},
}


@pytest.fixture(scope="module")
def dense():
    return fmnist_like(depth=DEPTH)


@pytest.fixture(scope="module")
def x():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_methods_lists_every_method_and_baseline():
    expected = ["dimap", "evit", "ppt", "random", "resize", "sait", "star", "tome", "topk"]
    assert list(vitprune.methods()) == expected


def test_apply_dimap_masks_returns_the_pruned_model(dense, x):
    model = copy.deepcopy(dense)
    assert vitprune.apply(model, "dimap", params_removed=0.5) is model
    qkv = model.blocks[0].attn.qkv.weight
    assert 0.3 < float((qkv == 0).float().mean()) < 0.7 and model(x).shape == (4, 10)


def test_apply_dimap_structured_shrinks(dense, x):
    model = vitprune.apply(
        copy.deepcopy(dense), "dimap", params_removed=0.5, structure="neuron-head", scope="layer"
    )
    assert sum(p.numel() for p in model.parameters()) < 0.7 * sum(p.numel() for p in dense.parameters())
    assert model(x).shape == (4, 10)


@pytest.mark.parametrize(
    "config, words",
    [
        ({"params_removed": 0.5, "rate": 1}, "unknown option"),
        ({"params_removed": 0.5, "structure": "rows"}, "structure='rows'"),
        ({"macs": 0.8, "structure": "neuron-head"}, "params_removed= only"),
    ],
)
def test_apply_dimap_refuses_bad_options(dense, config, words):
    with pytest.raises(ValueError, match=words):
        vitprune.apply(copy.deepcopy(dense), "dimap", **config)


@pytest.mark.parametrize("method", TOKEN_METHODS)
def test_masks_compose_with_each_token_method_in_either_order(dense, x, method):
    config = {**_options(method), **KNOBS[method]}
    cut = {"params_removed": 0.4}
    first = vitprune.apply(vitprune.apply(copy.deepcopy(dense), method, **config), "dimap", **cut)
    second = vitprune.apply(vitprune.apply(copy.deepcopy(dense), "dimap", **cut), method, **config)
    assert first.vitprune.method.name == second.vitprune.method.name == method
    assert torch.allclose(first(x), second(x), atol=1e-5)


@pytest.mark.parametrize("method", TOKEN_METHODS)
def test_structure_goes_before_a_token_method_and_is_refused_after(dense, x, method):
    config = {**_options(method), **KNOBS[method]}
    small = vitprune.apply(
        copy.deepcopy(dense), "dimap", params_removed=0.4, structure="neuron-head", scope="layer"
    )
    model = vitprune.apply(small, method, **config)
    assert (
        model(x).shape == (4, 10)
        and macs(model, x).mean < macs(vitprune.remove(copy.deepcopy(model)), x).mean
    )
    with pytest.raises(ValueError, match="apply dimap first, then the token method"):
        vitprune.apply(
            vitprune.apply(copy.deepcopy(dense), method, **config),
            "dimap",
            params_removed=0.4,
            structure="neuron-head",
        )


def _kept(model, method: str, x) -> float:
    """The fraction of dense MACs the model keeps: counted tokens, or nonzero weights for dimap."""
    if method == "dimap":
        return nonzero_macs(model, x) / macs(model, x).dense
    return macs(model, x).ratio


@pytest.mark.parametrize("method", [*TOKEN_METHODS, "dimap"])
def test_macs_means_the_same_on_every_method(dense, x, method):
    """0.75 keeps three quarters of the dense MACs whatever the method; "NG" is the same as GMACs."""
    dense_gmacs = macs(dense, x).dense / 1e9
    config = _options(method)
    fraction = vitprune.apply(copy.deepcopy(dense), method, macs=0.75, **config)
    absolute = vitprune.apply(copy.deepcopy(dense), method, macs=f"{0.75 * dense_gmacs:.9f}G", **config)
    assert _kept(fraction, method, x) == pytest.approx(0.75, abs=0.05)
    assert _kept(absolute, method, x) == pytest.approx(_kept(fraction, method, x), abs=1e-6)


def test_params_is_refused_as_ambiguous_and_params_removed_named(dense):
    with pytest.raises(ValueError, match=r"params=0.5 is ambiguous.*params_removed=0.5"):
        vitprune.apply(copy.deepcopy(dense), "dimap", params=0.5)
