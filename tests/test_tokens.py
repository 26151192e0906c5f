"""Invariants of the token machinery: counts, sizes, sources, prefix protection, the CLS row."""

import pytest
import torch
from conftest import images, make_model

import vitprune
from vitprune.tokens.attention import AttentionView
from vitprune.tokens.select import bipartite_merge, keep_topk
from vitprune.tokens.state import TokenState


def _tokens(b=2, n=13, c=8, prefix=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, c, generator=g)
    return x, TokenState.start(x, prefix, trace_source=True)


def test_bipartite_merge_conserves_size_and_partitions_patches():
    x, state = _tokens()
    y, out = bipartite_merge(x, state, x, r=4)
    assert y.shape == (2, 13 - 4, 8)
    assert torch.equal(out.pos[:, :2], state.pos[:, :2])  # prefix first and untouched
    torch.testing.assert_close(y[:, :2], x[:, :2])
    assert torch.all(out.size.sum(1) == 13)
    # every original token is in exactly one current token
    assert torch.all(out.source.sum(1) == 1)
    # each merged token is the size-weighted mean of the originals it holds
    for b in range(2):
        for t in range(y.shape[1]):
            members = out.source[b, t]
            torch.testing.assert_close(y[b, t], x[b, members].mean(0))


def test_bipartite_merge_caps_at_half_the_patches():
    x, state = _tokens(n=12, prefix=1)  # 11 patches → at most 5 merges
    y, _ = bipartite_merge(x, state, x, r=50)
    assert y.shape[1] == 12 - 5


def test_keep_topk_keeps_best_by_descending_score_and_marks_dropped():
    x, state = _tokens(prefix=1)
    scores = torch.tensor([[5.0, 0, 9, 1, 8, 2, 7, 3, 6, 4, 0.5, 0.25]]).expand(2, 12)
    y, out = keep_topk(x, state, scores, k=5)
    # prefix first, then the kept patches by descending score (authors' topk(sorted=True) order)
    expected = torch.tensor([0, 3, 5, 7, 9, 1])
    assert torch.equal(out.pos[0], expected)
    torch.testing.assert_close(y, x[:, expected])
    dropped = ~out.source.any(1)
    assert torch.equal(dropped[0].nonzero().flatten(), torch.tensor([2, 4, 6, 8, 10, 11, 12]))


def test_keep_topk_fuse_is_score_weighted_sum_of_dropped():
    x, state = _tokens(prefix=1)
    scores = torch.rand(2, 12, generator=torch.Generator().manual_seed(3))
    y, out = keep_topk(x, state, scores, k=5, fuse=True)
    assert y.shape[1] == 1 + 5 + 1
    kept = out.pos[:, 1:-1] - 1
    for b in range(2):
        mask = torch.ones(12, dtype=torch.bool)
        mask[kept[b]] = False
        w = scores[b, mask]
        torch.testing.assert_close(y[b, -1], (w[:, None] * x[b, 1:][mask]).sum(0))  # EViT Eq. 2
    assert torch.all(out.size.sum(1) == 13) and torch.all(out.pos[:, -1] == -1)


@pytest.mark.parametrize("with_bias", [False, True])
def test_cls_row_equals_full_attention_row(with_bias):
    model = make_model("qk_norm")
    attn = model.blocks[0].attn
    x = torch.randn(2, 17, model.embed_dim)
    bias = torch.rand(2, 1, 1, 17).log() if with_bias else None
    qkv = attn.qkv(x)
    view = AttentionView(attn, qkv, bias)
    q, k, _ = qkv.reshape(2, 17, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    full = (attn.q_norm(q) @ attn.k_norm(k).transpose(-2, -1)) * attn.scale
    if bias is not None:
        full = full + bias
    torch.testing.assert_close(view.cls_attention(), full.softmax(-1)[:, :, 0])


def test_prefix_tokens_survive_heavy_reduction(family):
    model = make_model(family)
    method, config = (
        ("evit", {"keep": 0.3, "layers": [0, 1, 2]}) if model.cls_token is not None else ("tome", {})
    )
    if method == "tome":
        config = {"r": 30}
    vitprune.apply(model, method, trace_source=True, **config)
    with torch.no_grad():
        out = model(images())
    p = model.num_prefix_tokens
    assert torch.equal(model.vitprune.state.pos[:, :p], torch.arange(p).expand(3, p))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", ["bf16_model", "bf16_autocast"])
def test_reduced_dtypes_run(dtype):
    model = make_model("registers")
    x = images()
    if dtype == "bf16_model":
        model = model.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    vitprune.apply(model, "tome", r=6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16_autocast"):
        out = model(x)
    assert torch.isfinite(out.float()).all()
    if dtype == "bf16_model":
        assert out.dtype == torch.bfloat16


def test_batch_one_and_batch_sizes_agree():
    model = vitprune.apply(make_model("vit"), "tome", r=5)
    x = images(batch=4)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_avg_pool_is_weighted_by_size():
    model = vitprune.apply(make_model("avgpool_no_cls"), "tome", r=3)
    with torch.no_grad():
        feats = model.forward_features(images())
        pooled = model.pool(feats)
    state = model.vitprune.state
    w = state.size[:, model.num_prefix_tokens :]
    expected = (feats[:, model.num_prefix_tokens :] * w).sum(1) / w.sum(1)
    torch.testing.assert_close(pooled, expected)
    assert not torch.allclose(pooled, feats[:, model.num_prefix_tokens :].mean(1))
