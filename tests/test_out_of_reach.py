"""Issue 32: a macs= target out of reach is named with digits enough to see it is outside the range,
and the range is given as fractions of dense too, by every method that solves a target."""

from __future__ import annotations

import re

import pytest
from conftest import make_model

import vitprune

NUMBER = r"([0-9.e+-]+)"
GMACS = re.compile(
    rf"\({NUMBER} GMACs, {NUMBER} of dense\).* {NUMBER}\.\.{NUMBER} GMACs \({NUMBER}\.\.{NUMBER} of dense\)"
)


@pytest.mark.parametrize(
    "method,config",
    [("tome", {}), ("ppt", {}), ("evit", {}), ("sait", {}), ("star", {"prior": "fmnist-vit"})],
)
def test_out_of_reach_target_is_visibly_outside_the_range_in_gmacs_and_fractions(method, config):
    model = vitprune.zoo.load("fmnist-vit") if method == "star" else make_model("vit")
    target = 0.02
    with pytest.raises(ValueError, match=f"out of reach for {method}") as err:
        vitprune.apply(vitprune.remove(model) if method == "star" else model, method, macs=target, **config)
    message = str(err.value)
    gmacs, fraction, lo, hi, lo_fraction, hi_fraction = map(float, GMACS.search(message).groups())
    assert gmacs < lo <= hi and fraction == pytest.approx(target) and fraction < lo_fraction < hi_fraction
    assert hi_fraction == pytest.approx(1.0) and lo_fraction > 2 * target  # a wide margin, not a tie


def test_dimap_out_of_reach_names_both_ends_as_fractions():
    from test_dimap import tiny_swin

    from vitprune.weights.dimap import dimap_masks

    with pytest.raises(ValueError, match=r"out of reach for dimap") as err:
        dimap_masks(tiny_swin(), macs=0.01)
    gmacs, fraction, lo, hi, lo_fraction, hi_fraction = map(float, GMACS.search(str(err.value)).groups())
    assert gmacs < lo < hi and fraction == pytest.approx(0.01) and lo_fraction > 0.02
