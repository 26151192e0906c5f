"""Issue 33: eager at batch 1, a reducing block costs at most ``BUDGET`` aten calls more than the same
block unpatched. Counts (``vitprune.measure.calls``) are exact on any machine, unlike times, so a
change that adds dispatch overhead back fails here. A DeiT-Ti (width 192, 3 heads, 12 blocks) on
112 px images: 49 patches, random weights."""

import copy

import pytest
import timm
import torch

import vitprune
from vitprune.measure.calls import aten_calls

BUDGET = 60
SETTINGS = {
    "tome": ("tome", {"macs": 0.6}),
    "evit": ("evit", {"macs": 0.6}),
    "ppt": ("ppt", {"macs": 0.6}),
    "ppt-prune": ("ppt", {"macs": 0.6, "threshold": 0.0}),
    "ppt-pool": ("ppt", {"macs": 0.6, "threshold": 1e9}),
    "star": ("star", {"alpha": 1.0, "rates": [0.9] * 12}),
    "sait": ("sait", {"macs": 0.6}),
}


@pytest.fixture(scope="module")
def dense():
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", img_size=112, num_classes=10).eval()
    images = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    return model, images, sum(aten_calls(model, images).values())


@pytest.mark.parametrize("label", sorted(SETTINGS))
def test_a_reducing_block_adds_at_most_the_budget_of_calls(dense, label):
    model, images, dense_calls = dense
    method, config = SETTINGS[label]
    patched = vitprune.apply(copy.deepcopy(model), method, **config)
    reducing = sum(patched.vitprune.method.active(i) for i in range(len(model.blocks)))
    calls = sum(aten_calls(patched, images).values())
    assert reducing > 0 and patched.vitprune.state.num_tokens < 50, "the setting must reduce tokens"
    extra = (calls - dense_calls) / reducing
    assert extra <= BUDGET, (
        f"{label}: {calls} aten calls against dense {dense_calls}, {extra:.1f} extra per reducing block "
        f"({reducing} blocks); the budget is {BUDGET}"
    )


def test_merges_after_the_first_still_backpropagate():
    """The eager merge adds into its own weighted tokens in place only where autograd keeps none of them."""
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, num_classes=10)
    vitprune.apply(model, "tome", r=2)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(x).square().sum().backward()
    assert model.vitprune.state.num_tokens == 17 - 3 * 2
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
