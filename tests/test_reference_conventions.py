"""The authors' token-order conventions (ToMe's merge.py, PPT's pruning branch), pinned by hand-built
cases and by re-computing one merging block from the written rules, without the authors' code."""

import math

import pytest
import torch
from conftest import images, make_model

import vitprune
from vitprune.methods.ppt import PPT, importance
from vitprune.tokens.attention import AttentionView
from vitprune.tokens.select import bipartite_merge
from vitprune.tokens.state import TokenState


def _metric(rows: dict[int, list[tuple[int, float]]], n: int, dim: int = 16) -> torch.Tensor:
    """Token i's metric is Σ w·e_axis over ``rows[i]``, plus a private axis that makes it unit-norm:
    the cosine similarity of two tokens is the dot product of their shared weights."""
    m = torch.zeros(1, n, dim)
    for i, parts in rows.items():
        for axis, w in parts:
            m[0, i, axis] = w
        m[0, i, dim - 1 - i] = math.sqrt(max(0.0, 1 - sum(w * w for _, w in parts)))
    return m


def _merge(metric: torch.Tensor, prefix: int, r: int):
    x = torch.randn(metric.shape[:2] + (4,))
    return bipartite_merge(x, TokenState.start(x, prefix, trace_source=True), metric, r)


def test_one_prefix_token_alternates_over_the_whole_sequence():
    # A = positions 0 (CLS), 2, 4, 6; B = 1, 3, 5. CLS equals token 1 but can never be a source.
    metric = _metric({0: [(0, 1.0)], 1: [(0, 1.0)], 4: [(0, 0.9)], 5: [(1, 1.0)], 2: [(1, 0.99)],
                      3: [(2, 1.0)], 6: [(2, 0.5)]}, n=7)
    x, state = _merge(metric, prefix=1, r=2)
    # sources 2 → 5 and 4 → 1; then CLS, the unmerged A (6) in order, and B (1, 3, 5)
    assert state.pos[0].tolist() == [0, 6, 1, 3, 5]
    assert state.size[0, :, 0].tolist() == [1, 1, 2, 1, 2]
    assert state.source[0, 2].nonzero().flatten().tolist() == [1, 4]
    assert state.source[0, 4].nonzero().flatten().tolist() == [2, 5]


def test_distillation_token_is_never_a_destination():
    # A = 0 (CLS), 2, 4, 6; B = 1 (dist), 3, 5, 7. Token 2 matches the distillation token best.
    metric = _metric({1: [(0, 1.0)], 2: [(0, 0.9), (3, 0.3)], 7: [(3, 1.0)], 3: [(1, 1.0)], 4: [(1, 0.95)],
                      5: [(2, 1.0)], 6: [(2, 0.8)]}, n=8)
    _, two = _merge(metric, prefix=2, r=2)
    assert two.pos[0].tolist() == [0, 1, 2, 3, 5, 7]  # 4 → 3, 6 → 5; CLS and dist lead
    _, three = _merge(metric, prefix=2, r=3)
    assert three.pos[0].tolist() == [0, 1, 3, 5, 7]  # then 2 → 7 (its best real destination)
    assert three.source[0, 4].nonzero().flatten().tolist() == [2, 7]


def test_without_prefix_unmerged_tokens_follow_match_score():
    # A = 0, 2, 4; B = 1, 3, 5; best matches 0→1 (0.5), 2→3 (0.9), 4→5 (0.7)
    metric = _metric({0: [(0, 0.5)], 1: [(0, 1.0)], 2: [(1, 0.9)], 3: [(1, 1.0)], 4: [(2, 0.7)],
                      5: [(2, 1.0)]}, n=6)
    _, state = _merge(metric, prefix=0, r=1)
    assert state.pos[0].tolist() == [4, 0, 1, 3, 5]


def test_ppt_pruning_keeps_survivors_by_descending_score_after_cls():
    model = make_model("vit", depth=1)
    attn = model.blocks[0].attn
    tokens = torch.randn(2, 17, model.embed_dim)
    x = torch.randn(2, 17, model.embed_dim)
    view = AttentionView(attn, attn.qkv(tokens), None)
    method = PPT({0: 5}, threshold=0.0)
    _, state = method.reduce(0, x, TokenState.start(x, 1), view)
    ranked = importance(view, 1).argsort(dim=1, descending=True)[:, : 16 - 5] + 1
    assert torch.equal(state.pos, torch.cat([torch.zeros(2, 1, dtype=torch.long), ranked], 1))


def _merge_by_rules(x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int, prefix: int):
    """One ToMe merge written from the rules, one image at a time with Python lists."""
    out_x, out_size = [], []
    for xb, sb, mb in zip(x, size, metric, strict=True):
        n = len(xb)
        a = [i for i in range(prefix, n) if i % 2 == 0]
        b = [i for i in range(prefix, n) if i % 2 == 1]
        m = mb / mb.norm(dim=-1, keepdim=True)
        best = {i: max(b, key=lambda j, i=i: float(m[i] @ m[j])) for i in a}
        sources = sorted(a, key=lambda i: -float(m[i] @ m[best[i]]))[: min(r, (n - prefix) // 2)]
        groups = {j: [j] + [i for i in sources if best[i] == j] for j in b}
        order = [[i] for i in range(prefix)] + [[i] for i in a if i not in sources] + [groups[j] for j in b]
        out_x.append(torch.stack([(xb[g] * sb[g]).sum(0) / sb[g].sum() for g in order]))
        out_size.append(torch.stack([sb[g].sum(0) for g in order]))
    return torch.stack(out_x), torch.stack(out_size)


def _forward_by_rules(model, inputs: torch.Tensor, merges: dict[int, int]) -> torch.Tensor:
    x = model._pos_embed(model.patch_embed(inputs))
    size = torch.ones(x.shape[0], x.shape[1], 1)
    for i, blk in enumerate(model.blocks):
        bias = size.log().transpose(1, 2)[:, None]
        h = blk.norm1(x)
        x = x + blk.ls1(blk.attn(h, attn_mask=bias))
        if merges.get(i):
            qkv = blk.attn.qkv(h).reshape(h.shape[0], h.shape[1], 3, blk.attn.num_heads, -1)
            keys = blk.attn.k_norm(qkv[:, :, 1].transpose(1, 2)).mean(1)
            x, size = _merge_by_rules(x, size, keys, merges[i], model.num_prefix_tokens)
        x = x + blk.ls2(blk.mlp(blk.norm2(x)))
    return model.forward_head(model.norm(x))


@pytest.mark.parametrize("family", ["vit", "deit_distilled", "deit3_layerscale"])
@pytest.mark.parametrize("merges", [{1: 5}, {0: 3, 2: 7}])
def test_tome_equals_a_recomputation_from_the_rules(family, merges):
    model = make_model(family)
    x = images(batch=3)
    with torch.no_grad():
        expected = _forward_by_rules(model, x, merges)
        r = [merges.get(i, 0) for i in range(len(model.blocks))]
        got = vitprune.apply(model, "tome", r=r)(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
