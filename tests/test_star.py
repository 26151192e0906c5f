"""STAR: the fusion rule, the prior lookup by original position, ACS rates and the MACs solver."""

import pytest
import timm
import torch
from conftest import images, make_model

import vitprune
from vitprune.calibrate.acs import layer_acs, mean_pairwise_cosine
from vitprune.calibrate.artifact import Calibration, read_calibration, save_calibration
from vitprune.measure import macs
from vitprune.methods.star import STAR, acs_rates, fuse_scores
from vitprune.tokens.state import TokenState


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0])
def test_fused_score_is_the_weighted_kl_minimiser(alpha):
    g = torch.Generator().manual_seed(0)
    p = torch.rand(12, generator=g, dtype=torch.float64).softmax(0)
    q = torch.rand(12, generator=g, dtype=torch.float64).softmax(0)
    z = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16)

    def objective():
        opt.zero_grad()
        f = z.softmax(0)
        loss = alpha * (f * (f / p).log()).sum() + (1 - alpha) * (f * (f / q).log()).sum()
        loss.backward()
        return loss

    opt.step(objective)
    closed = fuse_scores(p, q, alpha, eps=0.0)
    torch.testing.assert_close(z.detach().softmax(0), closed / closed.sum(), atol=1e-7, rtol=0)


def test_acs_rates_span_one_to_r_min():
    acs = torch.tensor([0.2, 0.5, 0.9, 0.4])
    rates = acs_rates(acs, 0.6)
    assert rates[0] == 1.0 and rates[2] == pytest.approx(0.6)
    assert rates[1] == pytest.approx(1 - 0.4 * 0.3 / 0.7)


def test_mean_pairwise_cosine_matches_the_full_matrix():
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    n = torch.nn.functional.normalize(x, dim=-1)
    full = n @ n.transpose(1, 2)
    expected = (full.sum((1, 2)) - 9) / (9 * 8)
    torch.testing.assert_close(mean_pairwise_cosine(x), expected)


class _UniformAttention:
    def __init__(self, b, n):
        self.b, self.n = b, n

    def cls_attention(self):
        return torch.full((self.b, 2, self.n), 1.0 / self.n)


def test_prior_is_looked_up_by_original_position():
    prior = torch.rand(3, 16)
    method = STAR([0.5, 0.5, 0.5], prior, alpha=0.0)
    x = torch.randn(2, 17, 4)
    state = TokenState.start(x, num_prefix=1)
    shuffled = torch.cat(
        [torch.zeros(2, 1, dtype=torch.long), torch.randperm(16).expand(2, 16)[:, :9] + 1], 1
    )
    state = state.gather(shuffled)
    scores = method.scores(2, state, _UniformAttention(2, state.num_tokens))
    expected = prior[2][shuffled[:, 1:] - 1].clamp_min(1e-6)
    torch.testing.assert_close(scores, expected)


def _calibration(depth, patches, seed=0):
    g = torch.Generator().manual_seed(seed)
    acs = torch.linspace(0.1, 0.8, depth, dtype=torch.float64)
    return Calibration(prior=torch.rand(depth, patches, generator=g), acs=acs, meta={"model": "synthetic"})


def test_macs_target_on_deit_small_lands_within_two_percent():
    model = timm.create_model("deit_small_patch16_224")
    vitprune.apply(model, "star", prior=_calibration(12, 196), macs=0.63)
    gmacs = macs(model, torch.rand(1, 3, 224, 224)).mean / 1e9
    assert gmacs == pytest.approx(2.9, rel=0.02)


def test_calibration_round_trip_and_shape_check(tmp_path):
    cal = _calibration(4, 16)
    save_calibration(cal, tmp_path / "prior")
    back = read_calibration(tmp_path / "prior.safetensors")
    assert torch.equal(back.prior, cal.prior.float()) and torch.equal(back.acs, cal.acs)
    assert back.meta == {"model": "synthetic"}
    model = make_model("vit")
    out = vitprune.apply(model, "star", prior=tmp_path / "prior", r_min=0.5)
    with torch.no_grad():
        assert torch.isfinite(out(images())).all()
    with pytest.raises(ValueError, match="needs prior \\(12, 16\\)"):
        vitprune.apply(make_model("vit", depth=12), "star", prior=tmp_path / "prior")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        vitprune.apply(make_model("vit"), "star", prior=tmp_path / "bad")


def test_static_star_counts_follow_the_rates(family):
    model = make_model(family)
    if model.cls_token is None:
        with pytest.raises(ValueError, match="class_token=False"):
            vitprune.apply(model, "star", alpha=1.0, rates=[0.5] * 4)
        return
    vitprune.apply(model, "star", prior=_calibration(4, 16), rates=[1.0, 0.5, 0.5, 0.75], trace_source=True)
    with torch.no_grad():
        model(images())
    p = model.num_prefix_tokens
    assert model.vitprune.state.num_patches == 3  # 16 → 16 → 8 → 4 → 3
    assert torch.equal(model.vitprune.state.pos[:, :p], torch.arange(p).expand(3, p))


def test_layer_acs_is_bounded_and_unpatched():
    model = vitprune.apply(make_model("vit"), "tome", r=2)
    acs = layer_acs(model, images(batch=4))
    assert acs.shape == (4,) and torch.all(acs.abs() <= 1)
    assert model.vitprune.method.name == "tome"  # the caller's model keeps its patch


@pytest.mark.parametrize(
    "config,match",
    [
        ({"alpha": 1.5, "rates": [0.5] * 4}, "alpha=1.5"),
        ({"alpha": 1.0, "rates": [0.5] * 3}, "3 rates"),
        ({"alpha": 1.0, "rates": [0.0] * 4}, "rates=0.0"),
        ({"alpha": 0.3}, "prior="),
    ],
)
def test_invalid_settings(config, match):
    with pytest.raises(ValueError, match=match):
        vitprune.apply(make_model("vit"), "star", **config)


def _adaptive(depth=4, seed=0):
    model = make_model("deit_distilled", depth=depth, seed=seed)
    with torch.no_grad():  # sharper attention than random init gives, so images differ in score mass
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4)
    return vitprune.apply(model, "star", prior=_calibration(depth, 16), alpha=0.8, r_min=0.5, adaptive=True)


def test_adaptive_keeps_per_image_counts_and_counts_macs_per_image():
    model = _adaptive()
    x = images(batch=6, seed=3)
    report = macs(model, x)
    counts = model.vitprune.state.counts()
    assert len(set(counts.tolist())) > 1, "images should keep different numbers of patches"
    assert len(set(report.per_image.tolist())) > 1
    assert model.vitprune.state.num_tokens == int(counts.max())


def test_adaptive_output_does_not_depend_on_batch_companions():
    model = _adaptive()
    x = images(batch=6, seed=3)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
        pairs = torch.cat([model(x[[i, (i + 3) % 6]])[:1] for i in range(len(x))])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(pairs, alone, atol=1e-5, rtol=0)


def test_adaptive_refuses_macs_target():
    with pytest.raises(ValueError, match="adaptive=True"):
        vitprune.apply(make_model("vit"), "star", prior=_calibration(4, 16), macs=0.7, adaptive=True)
