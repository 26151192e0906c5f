"""Per-image methods: an image's output does not depend on which images share its batch (fp32, 1e-5).

PPT picks prune or pool per image; STAR adaptive and SaiT value/mass keep a different number of
tokens per image (padding plus an attention mask). Each image must come out as it does alone, in a
shuffled batch, and beside other images, on random models and settings.
"""

from dataclasses import replace

import pytest
import torch
from conftest import CLEAR_RATIO, clear_of, threshold_between
from fuzz_models import vit_configs
from fuzz_settings import Prior
from hypothesis import assume, given
from hypothesis import strategies as st

import vitprune

pytestmark = pytest.mark.usefixtures("single_thread")


def _ppt(vit, model, x, draw):
    """PPT with a threshold between the images' score variances, so that the batch mixes branches."""
    options = {"r": draw(st.integers(1, vit.num_patches // 2)), "layers": [0, vit.depth - 1]}
    probe = vitprune.apply(model, "ppt", threshold=0.0, **options)
    with torch.no_grad():
        probe(x)
    gaps = probe.vitprune.method.variances[0].sort().values.clamp_min(1e-30)
    assume(bool((gaps[1:] / gaps[:-1]).max() > CLEAR_RATIO**2))  # a split clear of float error exists
    threshold = threshold_between(gaps)
    checked = vitprune.apply(model, "ppt", threshold=threshold, **options)
    with torch.no_grad():
        checked(x)
    assume(clear_of(threshold, checked.vitprune.method.variances))  # no image on the knife edge
    return {**options, "threshold": threshold}


SETTINGS = {
    "ppt": _ppt,
    "star": lambda vit, model, x, draw: {
        "prior": Prior(vit.depth, vit.num_patches, draw(st.integers(0, 99))).calibration(),
        "alpha": draw(st.floats(0.0, 1.0)),
        "r_min": draw(st.floats(0.05, 1.0)),
        "adaptive": True,
    },
    "sait-value": lambda vit, model, x, draw: {
        "layers": [0, vit.depth - 1],
        "tau": draw(st.floats(0.0, 3.0)),
    },
    "sait-mass": lambda vit, model, x, draw: {"layer": 0, "mass": draw(st.floats(0.05, 1.0))},
}


@pytest.mark.parametrize("pool", ["token", "avg", "max"])
@pytest.mark.parametrize("variant", sorted(SETTINGS))
@given(vit=vit_configs(prefixes=("cls",), max_depth=4), data=st.data())
def test_image_output_does_not_depend_on_batch_companions(variant, pool, vit, data):
    # 3 to 6 patches a side and sharp attention, so that images differ in what they keep
    vit = replace(vit, global_pool=pool, grid=(3 + vit.grid[0] % 4, 3 + vit.grid[1] % 4), sharpen=4.0)
    model = vit.build()
    batch = data.draw(st.integers(2, 6), label="batch")
    x = vit.images(batch, data.draw(st.integers(0, 2**16), label="image seed"))
    options = SETTINGS[variant](vit, model, x, data.draw)
    vitprune.apply(model, variant.split("-")[0], **options)
    order = torch.randperm(batch, generator=torch.Generator().manual_seed(batch))
    others = vit.images(batch, seed=2**20 + batch)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(image) for image in x.split(1)])
        shuffled = torch.empty_like(together).index_copy_(0, order, model(x[order]))
        beside_others = torch.cat([model(torch.cat([image, others]))[:1] for image in x.split(1)])
    for result in (alone, shuffled, beside_others):
        torch.testing.assert_close(result, together, atol=1e-5, rtol=0)
