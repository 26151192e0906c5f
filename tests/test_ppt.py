"""PPT: paper MACs, branch choice by threshold, mixed batches equal images run alone."""

import copy

import pytest
import timm
import torch
from conftest import clear_of, images, make_model, threshold_between

import vitprune
from vitprune.measure import macs
from vitprune.methods.ppt import PAPER_PATCHES, PAPER_THRESHOLD


@pytest.mark.parametrize("name,gmacs", [("deit_small_patch16_224", 2.94), ("deit_tiny_patch16_224", 0.80)])
def test_paper_setting_macs(name, gmacs):
    model = vitprune.apply(timm.create_model(name), "ppt", r=50, layers=(3, 6, 9), threshold=7e-5)
    assert macs(model, torch.rand(1, 3, 224, 224)).mean / 1e9 == pytest.approx(gmacs, rel=0.01)


def _model(family="deit_distilled", **config):
    return vitprune.apply(make_model(family, depth=12, img_size=128), "ppt", r=8, **config)


def _mixed_threshold(x):
    """A threshold between the images' score variances at the first PPT block, clear of float error
    there and at the later PPT blocks (whose variances follow the branches taken before them)."""
    probe = _model(threshold=0.0)
    with torch.no_grad():
        probe(x)
    threshold = threshold_between(probe.vitprune.method.variances[3])
    probe = _model(threshold=threshold)
    with torch.no_grad():
        probe(x)
    assert clear_of(threshold, probe.vitprune.method.variances), "an image sits on the threshold"
    return threshold


@pytest.mark.parametrize("threshold,pools", [(0.0, False), (1e9, True)])
def test_threshold_extremes_pick_one_branch(threshold, pools):
    model = _model(threshold=threshold)
    with torch.no_grad():
        model(images(batch=4, size=128))
    for branch in model.vitprune.method.branches.values():
        assert bool(branch.all()) if pools else not bool(branch.any())


def test_mixed_batch_equals_images_alone_and_keeps_macs():
    x = images(batch=6, size=128, seed=5)
    model = _model(
        threshold=_mixed_threshold(x),
    )
    with torch.no_grad():
        together = model(x)
        branch = model.vitprune.method.branches[3].clone()
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    assert branch.any() and not branch.all(), "the batch must mix both branches"
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    report = macs(model, x)
    assert torch.all(report.per_image == report.per_image[0])
    assert report.mean == macs(_model(threshold=0.0), x).mean == macs(_model(threshold=1e9), x).mean


def test_prefix_tokens_protected_and_counts_exact(family):
    model = make_model(family, depth=12, img_size=128)
    if model.cls_token is None:
        with pytest.raises(ValueError, match="class_token=False"):
            vitprune.apply(model, "ppt")
        return
    vitprune.apply(
        model, "ppt", r=10, threshold=_mixed_threshold(images(batch=4, size=128)), trace_source=True
    )
    with torch.no_grad():
        out = model(images(batch=4, size=128))
    p = model.num_prefix_tokens
    state = model.vitprune.state
    assert state.num_tokens == p + 64 - 3 * 10
    assert torch.equal(state.pos[:, :p], torch.arange(p).expand(4, p))
    assert torch.isfinite(out).all()


def test_pooled_images_conserve_size_pruned_ones_lose_it():
    x = images(batch=6, size=128, seed=5)
    model = _model(threshold=_mixed_threshold(x))
    with torch.no_grad():
        model(x)
    method, state = model.vitprune.method, model.vitprune.state
    ever_pruned = ~torch.stack(list(method.branches.values())).all(0)
    total = state.size[:, model.num_prefix_tokens :, 0].sum(1)
    assert torch.all(total[~ever_pruned] == 64)
    assert torch.all(total[ever_pruned] < 64)


def test_macs_target_solves_r():
    model = make_model("vit", depth=12, img_size=224)
    vitprune.apply(model, "ppt", macs=0.64)
    assert macs(model, images(size=224)).ratio == pytest.approx(0.64, abs=0.02)


def test_pooling_every_block_at_a_macs_target_is_tome():
    """Spread like ToMe's merges, PPT's solved schedule with every image pooling is ToMe itself."""
    dense, x = make_model("vit", depth=12, img_size=128), images(batch=3, size=128)
    ppt = vitprune.apply(copy.deepcopy(dense), "ppt", layers=tuple(range(12)), threshold=1e9, macs=0.63)
    tome = vitprune.apply(copy.deepcopy(dense), "tome", macs=0.63)
    assert list(ppt.vitprune.method.rs.values()) == tome.vitprune.method.per_layer
    assert len(set(tome.vitprune.method.per_layer)) == 2  # the target falls between two constant r
    with torch.no_grad():
        torch.testing.assert_close(ppt(x), tome(x), rtol=0, atol=1e-6)


@pytest.mark.bf16_attention
def test_bf16_mixed_batch_runs():
    x = images(batch=6, size=128, seed=5)
    model = copy.deepcopy(_model(threshold=_mixed_threshold(x))).to(torch.bfloat16)
    with torch.no_grad():
        out = model(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize(
    "config,match",
    [({"r": -5}, "r=-5"), ({"threshold": -1.0}, "threshold=-1.0"), ({"layers": [12]}, "layer 12")],
)
def test_invalid_settings(config, match):
    with pytest.raises(ValueError, match=match):
        vitprune.apply(make_model("vit", depth=12), "ppt", **config)


@pytest.mark.parametrize("img_size,patches", [(224, 196), (128, 64)])
def test_default_threshold_is_the_papers_carried_to_the_patch_count(img_size, patches):
    model = vitprune.apply(make_model("vit", depth=12, img_size=img_size), "ppt", r=8)
    threshold = model.vitprune.method.threshold
    assert threshold == pytest.approx(7e-5 * (196 / patches) ** 2)
    assert (threshold == 7e-5) == (patches == 196)


def test_default_threshold_judges_the_same_relative_spread_alike():
    """Scores tiled over 4x the patches (each a quarter) have 1/16 the variance: same decision."""
    s = torch.rand(2, 49).pow(3)
    s = s / s.sum(1, keepdim=True)
    tiled = s.repeat_interleave(4, dim=1) / 4
    ratio = (s.var(1) / (PAPER_THRESHOLD * (PAPER_PATCHES / 49) ** 2)) / (
        tiled.var(1) / (PAPER_THRESHOLD * (PAPER_PATCHES / 196) ** 2)
    )
    assert torch.allclose(ratio, torch.ones(2), rtol=0.05)
