"""Bugs the fuzz tests found, pinned with the smallest case that showed each."""

import math
import warnings

import pytest
import timm
import torch
from conftest import images, make_model
from families import flop_macs

import vitprune
from vitprune.measure import macs
from vitprune.methods.evit import default_layers

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("method,options", [("evit", {"keep": 0.5}), ("ppt", {"r": 2})])
def test_default_layers_fit_a_two_block_model(method, options):
    assert default_layers(2) == (0, 1)  # round(2 * 3/4) is 2: one past the last block
    model = vitprune.apply(make_model("vit", depth=2), method, **options)
    with torch.no_grad():
        assert torch.isfinite(model(images())).all()


@pytest.mark.parametrize("method,option", [("ppt", "threshold"), ("sait", "tau")])
def test_nan_is_not_a_valid_number(method, option):
    with pytest.raises(ValueError, match=f"{option}=nan"):
        vitprune.apply(make_model("vit"), method, **{option: math.nan})


def _small_vit(**kwargs) -> torch.nn.Module:
    """A timm ViT of width 32, two heads, 8-pixel patches, 10 classes; seed 0."""
    torch.manual_seed(0)
    arch = dict(patch_size=8, embed_dim=32, num_heads=2, num_classes=10)
    return timm.create_model("vit_tiny_patch16_224", **arch, **kwargs).eval()


def test_max_pooling_ignores_the_padding_of_per_image_counts():
    model = _small_vit(img_size=64, depth=4, global_pool="max", reg_tokens=1)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(4)
    vitprune.apply(model, "sait", layer=1, mode="mass", mass=0.7)
    x = images(batch=6, size=64, seed=3)
    with torch.no_grad():
        together = model(x)
        assert len(set(model.vitprune.state.counts().tolist())) > 1
        alone = torch.cat([model(image) for image in x.split(1)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_ppt_on_a_single_patch_warns_nothing():
    model = vitprune.apply(make_model("vit", img_size=16), "ppt", r=1, layers=[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error")
        model(images(size=16))
    assert model.vitprune.state.num_patches == 1


def test_evit_dense_macs_target_changes_nothing():
    model = make_model("vit", img_size=112)  # 49 patches: keeping 48 and fusing one costs as much as 49
    x = images(size=112)
    with torch.no_grad():
        dense = model(x)
        assert torch.equal(vitprune.apply(model, "evit", macs=1.0)(x), dense)


def test_attention_pool_macs_leave_out_the_prefix_tokens_it_skips():
    """SigLIP's attention pool with a class token and registers: timm pools the patches only."""
    model = _small_vit(img_size=32, depth=2, global_pool="map", reg_tokens=4)
    x = torch.rand(1, 3, 32, 32)
    assert macs(model, x).mean == flop_macs(model, x)


def test_sait_value_mode_at_tau_zero_is_the_unpatched_model():
    """Every patch is kept, so the blocks run unchanged (not re-sorted by score): bit for bit."""
    model = make_model("vit")
    x = images(3)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(vitprune.apply(model, "sait", tau=0.0, layers=[1, 2])(x), ref)


def test_ppt_macs_target_without_layers_removes_nothing():
    model = vitprune.apply(make_model("vit"), "ppt", layers=[], macs=1.0)
    assert model.vitprune.method.rs == {}
