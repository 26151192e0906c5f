"""Token reductions as pure tensor functions: top-k pruning (optionally fusing the dropped tokens) and
bipartite soft matching with size-weighted merging. Prefix tokens (CLS, distillation, registers) are
split off first and passed through untouched, so no method can ever drop or merge them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitprune.tokens.cache import constant, scalar
from vitprune.tokens.state import TokenState, gather_tokens, ones, rows

LEAD = 2.0**100  # a prefix token's score in a top-k: above any patch score a method gives


def _ranked(scores: Tensor, p: int, k: int) -> tuple[Tensor, Tensor]:
    """Indices ``[B, p + k]`` of the prefix tokens in order, then of the ``k`` patches with the highest
    ``scores`` ([B, patches]) by descending score; and the scores over the whole sequence ``[B, N]``.

    Eager, one top-k over the sequence: prefix token i scores ``LEAD / 2^i``, above every patch and in
    the prefix's order, so no index is shifted or joined (ATen joins int64 columns in seven calls).
    Compiled, the patches' top-k shifted past the prefix (prefix scores 0), which Inductor runs faster."""
    if scores.dtype not in (torch.float32, torch.float64):  # where LEAD is exact
        scores = scores.float()
    if not p:
        return scores.topk(k, dim=1).indices, scores
    b = scores.shape[0]
    if torch.compiler.is_compiling():  # compiled, the patches' own top-k joined to the prefix runs faster
        top = scores.topk(k, dim=1).indices + p
        prefix = torch.arange(p, device=scores.device).expand(b, p)
        return torch.cat([prefix, top], 1), torch.nn.functional.pad(scores, (p, 0))

    def lead():
        values = [LEAD / 2**i for i in range(p)]
        return torch.tensor(values, dtype=scores.dtype, device=scores.device).repeat(b, 1)

    full = torch.cat([constant(("lead", b, p, scores.dtype, scores.device), lead), scores], 1)
    return full.topk(p + k, dim=1).indices, full


BUCKETS = 8


def bucket_length(longest: int, n: int, buckets: int = BUCKETS) -> int:
    """The smallest of ``buckets`` evenly spaced lengths ceil(n·i / buckets) that holds ``longest``.

    Under ``torch.compile`` a batch of per-image counts is padded to one of these few lengths rather
    than to its longest image, so new counts reuse a compiled graph instead of compiling another.
    """
    i = (longest - 1) * buckets // n + 1  # the first i with ceil(n·i / buckets) >= longest
    return -(-n * i // buckets)


def keep_topk(x: Tensor, state: TokenState, scores: Tensor, k: int | Tensor, fuse: bool = False):
    """Keep the ``k`` patch tokens with the highest ``scores`` ([B, patches]); drop the rest.

    Kept patches follow the prefix in descending score order, as the authors' code of EViT, STAR
    and PPT lays them out (``topk(sorted=True)``); only PPT's later bipartite split depends on it.
    ``k`` is one count for the batch, or a ``[B]`` tensor of per-image counts: the batch is then as
    long as the largest count (under ``torch.compile``, the next ``bucket_length``) and each shorter
    image is padded (``state.valid`` marks the padding, which the attention mask hides). Padding
    never wins a place while a real token is left. With ``fuse`` (EViT's fusion, Liang et al. Eq. 2)
    the dropped patches become one extra token at the end, Σ score_j · x_j over the dropped j
    (unnormalised, as in the paper and its code); its size is the sum of theirs, its position -1.
    """
    p = state.num_prefix
    n = scores.shape[1]
    per_image = isinstance(k, Tensor)
    longest = int(k.max()) if per_image else k  # per-image counts: the one host read, shapes need it
    if per_image and torch.compiler.is_compiling():
        longest = bucket_length(longest, n)
    if longest >= n and not per_image:
        return x, state
    if state.valid is not None:
        scores = scores.masked_fill(~state.valid[:, p:], float("-inf"))
    idx, full = _ranked(scores, p, longest)
    x_kept, kept = gather_tokens(x, idx), state.gather(idx)  # state.gather keeps ``valid`` too
    if per_image:
        valid = torch.arange(longest, device=x.device) < k[:, None]
        kept.valid = torch.cat([valid.new_ones(valid.shape[0], p), valid], 1)
    if not fuse:
        return x_kept, kept
    if per_image or state.valid is not None:
        raise ValueError("fusing dropped tokens is only supported with one count for the whole batch")
    b, n = full.shape
    weights = full.scatter(1, idx, 0.0)  # each dropped patch's score, 0 for the prefix and the kept
    if weights.dtype != x.dtype:
        weights = weights.to(x.dtype)
    fused = torch.bmm(weights.view(b, 1, n), x)  # [B, 1, C]
    if state.size is None:  # every dropped patch is one patch
        dropped_count = n - p - longest
        fused_size = constant(
            ("fused-size", b, dropped_count, x.dtype, x.device),
            lambda: torch.full((b, 1, 1), dropped_count, dtype=x.dtype, device=x.device),
        )
    else:
        fused_size = state.size.scatter(1, rows(idx, 1), 0.0).sum(1, keepdim=True)
    source = None
    if state.source is not None:
        dropped = weights.new_ones(weights.shape, dtype=torch.bool).scatter(1, idx, False)
        source = torch.cat([kept.source, (state.source & dropped[..., None]).any(1, keepdim=True)], 1)
    fused_pos = constant(("fused-pos", b, x.device), lambda: torch.full((b, 1), -1, device=x.device))
    out = TokenState(
        num_prefix=p,
        pos=torch.cat([kept.pos, fused_pos], 1),
        size=torch.cat([kept.sizes(x_kept), fused_size], 1),
        source=source,
    )
    return torch.cat([x_kept, fused], 1), out


def mass_counts(scores: Tensor, mass: float, valid: Tensor | None = None) -> Tensor:
    """Per image, the fewest top patches whose normalised score mass reaches ``mass``, ``[B]``.

    Scores are normalised to sum 1 over each image's real patches (the "weighted percentile" of
    STAR's adaptive variant and SaiT's mass mode). At least one patch is always kept.
    """
    if valid is not None:
        scores = scores.masked_fill(~valid, 0.0)
    s = scores.float() / scores.float().sum(1, keepdim=True)
    cumulative = s.sort(dim=1, descending=True).values.cumsum(1)
    k = (cumulative < mass - 1e-6).sum(1) + 1
    limit = scores.shape[1] if valid is None else valid.sum(1)
    return torch.minimum(k, torch.as_tensor(limit, device=k.device))


def _split_by_rank(score: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """The ``r`` indices of highest ``score`` ([B, n]) in descending order, and the others ascending,
    without a sort or top-k (Inductor fuses comparisons, cumsum and scatters; ATen's sorts it cannot):
    an index's rank counts the scores above it (ties: lower index first), it goes to slot ``rank``;
    an unchosen index goes to the slot counting the unchosen before it, chosen ones to a spare slot."""
    b, n = score.shape
    index = torch.arange(n, device=score.device)
    above = (score[:, None, :] > score[:, :, None]) | (
        (score[:, None, :] == score[:, :, None]) & (index[None, :] < index[:, None])
    )
    rank = above.sum(-1)
    order = torch.empty_like(rank).scatter_(1, rank, index.expand(b, n))
    chosen = rank < r
    slot = torch.where(chosen, n - r, (~chosen).cumsum(1) - 1)
    rest = rank.new_zeros(b, n - r + 1).scatter_(1, slot, index.expand(b, n))[:, : n - r]
    return order[:, :r], rest


def bipartite_merge(x: Tensor, state: TokenState, metric: Tensor, r: int):
    """Merge ``r`` patch tokens away by bipartite soft matching (ToMe, Bolya et al. 2023, §3).

    Conventions of the authors' code (facebookresearch/ToMe ``merge.py``), so outputs match it: the
    whole sequence, prefix included, alternates into A (even positions) and B (odd). Prefix tokens
    in A can never be a source and those in B never a destination (the reference's two cases are
    the class token at 0 and DeiT's distillation token at 1; registers follow the same rule). Each
    A token finds its most similar B token by cosine similarity of ``metric`` ([B, N, C], or
    [B, N, 1, C]); the ``r`` best-matched A tokens are merged into their partners by a size-weighted
    average and sizes add up; ``r`` is capped at half the patches. Output: prefix, unmerged A
    patches, B patches.
    With prefix tokens the unmerged A patches keep their current order; without any (no class
    token) they follow match score, as in the reference.
    """
    p = state.num_prefix
    r = min(r, state.num_patches // 2)
    if r <= 0:
        return x, state
    if state.valid is not None:
        raise ValueError("bipartite merging needs one token count for the whole batch (no padding)")
    with torch.no_grad():
        best, partner = _match(metric, p)
    if torch.compiler.is_compiling():
        return _merge_compiled(x, state, best[..., 0], partner[..., 0], r)
    return _merge_eager(x, state, best, partner, r)


def _match(metric: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """Each A token's best cosine similarity to a B token and that B token's index, ``[B, N_a, 1]``
    each; prefix tokens in A match nothing (-inf) and those in B are never matched."""
    m = metric / metric.norm(dim=-1, keepdim=True)
    similarity = torch.bmm(*_halves(m))
    if p:  # a fill, not an added -inf: a zero metric's NaN similarity must not win either
        na, nb = similarity.shape[1:]
        key = ("tome-mask", na, nb, p, similarity.device)
        similarity.masked_fill_(constant(key, lambda: _prefix_mask(na, nb, p, similarity)), float("-inf"))
    return similarity.max(dim=-1, keepdim=True)


def _halves(m: Tensor) -> tuple[Tensor, Tensor]:
    """Views of ``m`` ([B, N, C] or [B, N, 1, C]): its A tokens (even positions) ``[B, N_a, C]`` and its
    B tokens (odd) transposed, ``[B, C, N_b]``; eager, one ``as_strided`` each instead of a slice and a
    transpose (and a squeeze)."""
    if torch.compiler.is_compiling():
        m = m.flatten(2)
        return m[:, ::2], m[:, 1::2].transpose(1, 2)
    b, n, c = m.shape[0], m.shape[1], m.shape[-1]
    s0, s1, s2 = m.stride(0), m.stride(1), m.stride(-1)
    a = m.as_strided((b, (n + 1) // 2, c), (s0, 2 * s1, s2))
    return a, m.as_strided((b, c, n // 2), (s0, s2, 2 * s1), m.storage_offset() + s1)


def _prefix_mask(na: int, nb: int, p: int, like: Tensor) -> Tensor:
    """``[N_a, N_b]``, True in the rows of prefix tokens in A (never a source) and the columns of
    prefix tokens in B (never a destination)."""
    mask = torch.zeros(na, nb, dtype=torch.bool, device=like.device)
    mask[: (p + 1) // 2] = True
    mask[:, : p // 2] = True
    return mask


def _merge_eager(x: Tensor, state: TokenState, best: Tensor, partner: Tensor, r: int):
    """The merge in few aten calls, for eager mode (issue 33), in sequence positions throughout: the
    tokens weighted by size and the sizes side by side, ``[B, N, C + 1]``, so one gather and one
    scatter-add move both; the sources are added into their destinations, and one gather of the kept
    positions (prefix, unmerged A, B) lays out the result; ``best``/``partner`` are ``[B, N_a, 1]``."""
    b, n, c = x.shape
    p = state.num_prefix
    if p:
        src = best.topk(r, dim=1).indices  # [B, r, 1], best match first (the reference's argsort)
    else:
        order = best.topk(best.shape[1], dim=1).indices
        src = order[:, :r]
    dst = torch.add(scalar(1, partner), partner.gather(1, src), alpha=2)  # B index → sequence position
    src = src * 2
    weighted = torch.cat([x, ones(b, n, x)], 2)  # contiguous parts: ATen's one-call cat
    if state.size is not None:  # else every token is one patch: no weighting
        weighted = weighted * state.size
    # A new tensor, added into in place unless autograd keeps it for the gather's backward.
    add = weighted.scatter_add if weighted.requires_grad else weighted.scatter_add_
    summed = add(1, rows(dst, c + 1), weighted.gather(1, rows(src, c + 1)))
    if p:  # unmerged A tokens keep their order: the n - r smallest keys, sources pushed past them
        past = 3 * int(n)  # a number: under torch.jit.trace (fvcore) shapes are 0-dim tensors
        keep = _layout(b, n, p, x.device).scatter(1, src, past).topk(n - r, dim=1, largest=False).indices
    else:  # no prefix: unmerged A tokens in match order, as in the reference
        keep = torch.cat([order[:, r:] * 2, _b_positions(b, n, x.device)], 1)
    kept = summed.gather(1, rows(keep, c + 1))
    size = _columns(kept, c, 1)
    if size.requires_grad:  # sizes carry no gradient
        size = size.detach()
    source = None
    if state.source is not None:
        n0 = state.source.shape[-1]
        held = state.source.to(torch.uint8)
        held = held.scatter_reduce(1, rows(dst, n0), held.gather(1, rows(src, n0)), "amax")
        source = held.gather(1, rows(keep, n0)).bool()
    out = TokenState(p, state.gathered_pos(keep), size=size, source=source)
    return _columns(kept, 0, c) / size, out


def _columns(t: Tensor, start: int, width: int) -> Tensor:
    """``t[..., start : start + width]`` of a ``[B, N, C]`` tensor, in one ``as_strided`` call."""
    s0, s1, s2 = t.stride()
    return t.as_strided((t.shape[0], t.shape[1], width), (s0, s1, s2), t.storage_offset() + start * s2)


def _layout(b: int, n: int, p: int, device) -> Tensor:
    """Sort keys ``[B, N, 1]`` of the merged layout: prefix token i → i, A patch at position j → n + j,
    B patch at j → 2n + j (a source is given 3n)."""

    def make():
        j = torch.arange(n, device=device)
        return torch.where(j < p, j, j + n * (1 + j % 2)).view(1, n, 1).expand(b, n, 1)

    return constant(("tome-layout", b, n, p, device), make)


def _b_positions(b: int, n: int, device) -> Tensor:
    """Sequence positions of the B tokens, ``[B, N_b, 1]``."""
    return constant(
        ("tome-b", b, n, device), lambda: torch.arange(1, n, 2, device=device).view(1, -1, 1).expand(b, -1, 1)
    )


def _merge_compiled(x: Tensor, state: TokenState, best: Tensor, partner: Tensor, r: int):
    """The merge under ``torch.compile``: ranks by comparison and sources added by a one-hot matmul
    (Inductor fuses the first and has no scatter-add); ``best``/``partner`` are ``[B, N_a]``."""
    p = state.num_prefix
    prefix_a, prefix_b = (p + 1) // 2, p // 2  # prefix tokens at even / odd positions
    with torch.no_grad():
        if p:
            src, unmerged = _split_by_rank(best, r)
            unmerged = unmerged[:, prefix_a:]
        else:
            src, unmerged = best.argsort(dim=-1, descending=True).split([r, best.shape[1] - r], dim=1)
        dst = partner.gather(1, src)

    def split(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return t[:, :p], t[:, ::2], t[:, 1::2]

    c = x.shape[-1]
    sizes = state.sizes(x)
    (x_pre, xa, xb), (s_pre, sa, sb) = split(x), split(sizes)
    onehot = dst[:, None, :] == torch.arange(xb.shape[1], device=x.device)[:, None]  # [B, N_b, r]
    added = onehot.to(x.dtype) @ gather_tokens(torch.cat([xa * sa, sa], -1), src)
    b_sum, b_size = xb * sb + added[..., :c], sb + added[..., c:]
    x_out = torch.cat([x_pre, gather_tokens(xa, unmerged), (b_sum / b_size)[:, prefix_b:]], 1)

    pos_pre, pos_a, pos_b = split(state.pos)
    source = None
    if state.source is not None:
        src_pre, src_a, src_b = split(state.source.to(torch.uint8))
        n0 = src_a.shape[-1]
        src_b = src_b.scatter_reduce(1, dst[..., None].expand(-1, -1, n0), gather_tokens(src_a, src), "amax")
        source = torch.cat([src_pre, gather_tokens(src_a, unmerged), src_b[:, prefix_b:]], 1).bool()
    out = TokenState(
        num_prefix=p,
        pos=torch.cat([pos_pre, pos_a.gather(1, unmerged), pos_b[:, prefix_b:]], 1),
        size=torch.cat([s_pre, gather_tokens(sa, unmerged), b_size[:, prefix_b:]], 1).detach(),
        source=source,
    )
    return x_out, out
