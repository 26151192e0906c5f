"""Chefer-style LRP (vitprune.calibrate.lrp): forward fidelity, conservation, rules, rollout, STAR prior."""

import functools
import itertools

import pytest
import timm
import torch

from vitprune.calibrate import lrp

TINY = {"img_size": 32, "patch_size": 8, "depth": 3, "embed_dim": 48, "num_heads": 3, "num_classes": 10}
VARIANTS = {
    "plain": ("vit_tiny_patch16_224", {}),
    "layerscale": ("deit3_small_patch16_224", {}),
    "qk_norm": ("vit_tiny_patch16_224", {"qk_norm": True}),
    "registers": ("vit_tiny_patch16_224", {"reg_tokens": 2}),
    "deit3_all": ("deit3_small_patch16_224", {"qk_norm": True, "reg_tokens": 2}),
}


def _model(variant: str, seed: int = 0) -> torch.nn.Module:
    name, kwargs = VARIANTS[variant]
    torch.manual_seed(seed)
    model = timm.create_model(name, **TINY, **kwargs).eval()
    with torch.no_grad():  # LayerScale starts at ~1e-6; give it both signs so mishandling it would show
        for m in model.modules():
            if hasattr(m, "gamma"):
                m.gamma.uniform_(-1.5, 1.5)
            if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        # timm's init gives attention logits ~1e-2, where the safe divide's 1e-9 leaks up to ~2e-6 of the
        # relevance at near-zero q·k products; a trained-like O(1) scale keeps the leak well under 1e-6
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4.0)
    return model


def _images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@functools.cache
def _trace(variant: str, stabilize_add: bool = False) -> lrp.RelevanceTrace:
    model, targets = _model(variant), torch.tensor([1, 4, 7])
    return lrp.relevance_trace(model, _images(), targets, stabilize_add=stabilize_add)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_calibration_forward_reproduces_timm_logits(variant):
    expected = _model(variant).double()(_images().double())
    torch.testing.assert_close(_trace(variant).logits, expected.detach(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("stabilize_add", [False, True])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_total_relevance_is_one_at_every_block_boundary(variant, stabilize_add):
    totals = _trace(variant, stabilize_add).block_totals
    assert totals.shape == (3, TINY["depth"] + 1)
    torch.testing.assert_close(totals, torch.ones_like(totals), rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_attention_map_gets_half_of_the_attention_branch(variant):
    trace = _trace(variant)
    assert trace.attn_branch_totals.abs().min() > 1e-3  # the check is not vacuous
    # equal up to the safe divide's 1e-9 leak in proj's z⁺ rule and the A·V split (~1e-8 relative here)
    torch.testing.assert_close(trace.attn_totals, 0.5 * trace.attn_branch_totals, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rollout_is_nonnegative_and_matches_explicit_products(variant):
    trace = _trace(variant)
    prefix = trace.num_prefix_tokens
    assert prefix == (3 if "registers" in variant or variant == "deit3_all" else 1)
    abar = trace.attn_maps
    maps = lrp.cls_rollout(abar, prefix)
    depth, n = abar.shape[1], abar.shape[-1]
    assert maps.shape == (3, depth, n - prefix) and n - prefix == 16
    assert (abar >= 0).all() and (maps >= 0).all() and maps.sum() > 0
    assert torch.equal(maps[:, -1], abar[:, -1, 0, prefix:])
    eye = torch.eye(n, dtype=abar.dtype)
    for b, start in itertools.product(range(3), range(depth)):
        product = functools.reduce(torch.matmul, [eye + abar[b, j] for j in reversed(range(start, depth))])
        torch.testing.assert_close(maps[b, start], product[0, prefix:], rtol=1e-12, atol=1e-15)


def test_attribution_maps_equals_rollout_of_trace():
    maps = lrp.attribution_maps(_model("deit3_all"), _images(), torch.tensor([1, 4, 7]))
    trace = _trace("deit3_all")
    assert torch.equal(maps, lrp.cls_rollout(trace.attn_maps, trace.num_prefix_tokens))


@pytest.mark.parametrize("variant", ["plain", "deit3_all"])
def test_batched_equals_per_sample(variant):
    model, images, targets = _model(variant), _images(), torch.tensor([1, 4, 7])
    batched = lrp.attribution_maps(model, images, targets)
    for b in range(3):
        single = lrp.attribution_maps(model, images[b : b + 1], targets[b : b + 1])[0]
        rel = (batched[b] - single).abs().sum(-1) / single.abs().sum(-1)
        assert rel.max() <= 1e-9, rel


def test_safe_divide_is_zero_only_where_the_denominator_is_exactly_zero():
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([0.0, 2.0, -4.0], dtype=torch.float64)
    expected = torch.stack([a[0] * 0, a[1] / (2 + 1e-9), a[2] / (-4 + 1e-9)])
    torch.testing.assert_close(lrp.safe_divide(a, b), expected, rtol=1e-15, atol=0)


def test_linear_zplus_rule_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, generator=g, dtype=torch.float64)
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    r = torch.rand(2, 3, generator=g, dtype=torch.float64)
    # z_bkj: the positive contribution of input j to output k (x⁺w⁺ + x⁻w⁻), element by element
    z = torch.zeros(2, 3, 5, dtype=torch.float64)
    for b, k, j in itertools.product(range(2), range(3), range(5)):
        xj, wkj = x[b, j].item(), w[k, j].item()
        z[b, k, j] = max(xj, 0) * max(wkj, 0) + min(xj, 0) * min(wkj, 0)
    expected = torch.zeros_like(x)
    for b, k, j in itertools.product(range(2), range(3), range(5)):
        expected[b, j] += z[b, k, j] * r[b, k] / (z[b, k].sum() + 1e-9)
    got = lrp.linear_zplus(x, w, r)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    assert (got >= 0).all()  # R ≥ 0 gives R_in ≥ 0
    torch.testing.assert_close(got.sum(1), r.sum(1), rtol=1e-8, atol=0)


def test_residual_add_rule_by_hand():
    u = torch.tensor([[[1.0, -2.0], [0.5, 3.0]], [[2.0, 1.0], [-1.0, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[[-3.0, 1.0], [0.5, -1.0]], [[1.0, 1.0], [4.0, 2.0]]], dtype=torch.float64)
    r = torch.tensor([[[0.6, 0.0], [0.1, 0.0]], [[0.5, -0.1], [0.3, 0.3]]], dtype=torch.float64)
    r_u, r_v = lrp.residual_add(u, v, r)
    for b in range(2):  # every sum is per sample
        s = r[b] / (u[b] + v[b] + 1e-9)
        a, c = u[b] * s, v[b] * s
        sa, sc, total = a.sum().item(), c.sum().item(), r[b].sum().item()
        fa = abs(sa) / (abs(sa) + abs(sc) + 1e-9) * total
        fc = abs(sc) / (abs(sa) + abs(sc) + 1e-9) * total
        torch.testing.assert_close(r_u[b], a * fa / (sa + 1e-9), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(r_v[b], c * fc / (sc + 1e-9), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close((r_u[b] + r_v[b]).sum(), r[b].sum(), rtol=1e-8, atol=0)
    # sample 0's residual share has a negative raw total (-0.25), so its elements flip sign
    raw = u[0] * r[0] / (u[0] + v[0])
    assert raw.sum() < 0 and raw[0, 0] < 0 and r_u[0, 0, 0] > 0 and r_u[0].sum() > 0


def test_bilinear_rule_halves_and_conserves():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 4, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    r = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    r_a, r_v = lrp.bilinear(a, v, r)
    s = r / (a @ v + 1e-9)
    for b, i, j in itertools.product(range(2), range(4), range(4)):
        torch.testing.assert_close(r_a[b, i, j], 0.5 * a[b, i, j] * (s[b, i] * v[b, j]).sum())
    torch.testing.assert_close(r_a.sum((1, 2)), 0.5 * r.sum((1, 2)), rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(r_v.sum((1, 2)), 0.5 * r.sum((1, 2)), rtol=1e-7, atol=1e-12)


def _distinct_top_images(model, top_k):
    """Two images whose top-k class sets differ under ``model`` (so the target modes must differ)."""
    images = torch.stack([_images(1, seed=1)[0], -4 * _images(1, seed=2)[0]])
    with torch.no_grad():
        top = lrp.calibration_copy(model)(images.double()).topk(top_k, 1).indices
    assert set(top[0].tolist()) != set(top[1].tolist())
    return images


def test_star_prior_shape_range_and_target_modes():
    model = _model("registers")
    images = _distinct_top_images(model, 5)
    per_image = lrp.star_prior(model, images, batch_size=4, progress=False)
    first = lrp.star_prior(model, images, targets="first_image", batch_size=3, progress=False)
    for prior in (per_image, first):
        assert prior.shape == (TINY["depth"], 16) and prior.dtype == torch.float64
        assert torch.isfinite(prior).all() and (prior >= 0).all() and (prior <= 5).all()
    assert not torch.allclose(per_image, first)
    # with one image the two modes coincide, and the batching does not matter
    one = lrp.star_prior(model, images[:1], batch_size=5, progress=False)
    torch.testing.assert_close(lrp.star_prior(model, images[:1], targets="first_image", progress=False), one)


def test_star_prior_cell_mean_is_the_separable_filter_of_the_normalised_map():
    """A ×s bilinear upsample's cell mean is a [1/8, 3/4, 1/8] filter (edge-replicated) on the patch grid."""
    model, image = _model("plain"), _images(1)
    prior = lrp.star_prior(model, image, top_k=1, progress=False)
    with torch.no_grad():
        target = model(image).argmax(1)
    maps = lrp.attribution_maps(model, image, target)[0].reshape(-1, 4, 4)
    up = torch.nn.functional.interpolate(maps[:, None], scale_factor=8, mode="bilinear", align_corners=False)
    lo, hi = up.amin((1, 2, 3))[:, None, None], up.amax((1, 2, 3))[:, None, None]
    m = (maps - lo) / (hi - lo)
    for dim in (1, 2):
        before = torch.cat([m.narrow(dim, 0, 1), m.narrow(dim, 0, 3)], dim)
        after = torch.cat([m.narrow(dim, 1, 3), m.narrow(dim, 3, 1)], dim)
        m = 0.125 * before + 0.75 * m + 0.125 * after
    torch.testing.assert_close(prior, m.reshape(-1, 16), rtol=0, atol=1e-12)


def test_callers_model_is_untouched():
    model = _model("deit3_all")
    fused = [blk.attn.fused_attn for blk in model.blocks]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = _images()
    with torch.no_grad():
        before = model(images)
    lrp.attribution_maps(model, images, torch.tensor([0, 1, 2]))
    lrp.star_prior(model, images[:1], top_k=2, progress=False)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert [blk.attn.fused_attn for blk in model.blocks] == fused
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(images), before)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg"}, "class token"),
        ("deit_tiny_distilled_patch16_224", {}, "distilled"),
    ],
)
def test_unsupported_models_raise(name, kwargs, message):
    model = timm.create_model(name, **TINY, **kwargs).eval()
    with pytest.raises(ValueError, match=message):
        lrp.attribution_maps(model, _images(1), torch.tensor([0]))
