"""SaiT (reconstructed): runtime density changes, per-image counts, dense mode equals the unpatched model."""

import pytest
import timm
import torch
from conftest import images, make_model

import vitprune
from vitprune.measure import macs


def _model():
    model = make_model("registers", depth=6, img_size=128)
    with torch.no_grad():  # sharper attention than random init, so images differ in score mass
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4)
    return model


def test_dense_mode_equals_unpatched_and_density_changes_without_repatching():
    model = _model()
    x = images(batch=4, size=128)
    with torch.no_grad():
        ref = model(x)
        vitprune.apply(model, "sait", layer=2, mode="dense")
        ctx = model.vitprune
        assert torch.equal(model(x), ref)
        model.sait.set(mode="ratio", keep=0.5)
        sparse = model(x)
        assert model.vitprune is ctx and model.vitprune.state.num_patches == 32
        model.sait.set(mode="dense")
        assert torch.equal(model(x), ref)
    assert not torch.allclose(sparse, ref)


@pytest.mark.parametrize("setting", [{"mode": "value", "tau": 1.0}, {"mode": "mass", "mass": 0.7}])
def test_adaptive_modes_keep_per_image_counts_and_are_batch_invariant(setting):
    model = vitprune.apply(_model(), "sait", layer=2, **setting)
    x = images(batch=6, size=128, seed=4)
    with torch.no_grad():
        together = model(x)
        counts = model.vitprune.state.counts()
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    assert len(set(counts.tolist())) > 1
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    report = macs(model, x)
    assert len(set(report.per_image.tolist())) > 1 and report.mean < report.dense


def test_value_mode_keeps_tokens_above_tau_over_n():
    model = vitprune.apply(_model(), "sait", layer=2, tau=0.0)
    with torch.no_grad():
        model(images(size=128))
    # tau=0 keeps every patch, known before the forward: no block reduces, no token state is built
    assert model.vitprune.state is None


def test_macs_target_solves_keep_ratio():
    model = vitprune.apply(timm.create_model("deit_small_patch16_224"), "sait", macs=0.6)
    assert macs(model, torch.rand(1, 3, 224, 224)).ratio == pytest.approx(0.6, abs=0.02)
    assert model.sait.mode == "ratio"


def test_remove_drops_the_runtime_handle():
    model = vitprune.apply(_model(), "sait", keep=0.5)
    vitprune.remove(model)
    assert not hasattr(model, "sait") and not hasattr(model, "vitprune")


@pytest.mark.parametrize(
    "setting,match",
    [
        ({"mode": "sparse"}, "mode='sparse'"),
        ({"keep": 0.0}, "keep=0.0"),
        ({"mass": 1.5}, "mass=1.5"),
        ({"tau": -1}, "tau=-1"),
        ({"layer": 9}, "layer 9"),
        ({"mode": "mass", "macs": 0.5}, "mode='ratio'"),
    ],
)
def test_invalid_settings(setting, match):
    with pytest.raises(ValueError, match=match):
        vitprune.apply(_model(), "sait", **setting)
