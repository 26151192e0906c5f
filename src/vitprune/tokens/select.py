"""Token reductions as pure tensor functions: top-k pruning (optionally fusing the dropped tokens) and
bipartite soft matching with size-weighted merging. Prefix tokens (CLS, distillation, registers) are
split off first and passed through untouched, so no method can ever drop or merge them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitprune.tokens.state import TokenState, gather_tokens


def _prefix_index(state: TokenState, like: Tensor) -> Tensor:
    b = like.shape[0]
    return torch.arange(state.num_prefix, device=like.device).expand(b, state.num_prefix)


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
    patch_valid = None if state.valid is None else state.valid[:, p:]
    if patch_valid is not None:
        scores = scores.masked_fill(~patch_valid, float("-inf"))
    top = scores.topk(longest, dim=1).indices
    idx = torch.cat([_prefix_index(state, x), top + p], dim=1)
    x_kept, kept = gather_tokens(x, idx), state.gather(idx)
    valid = None
    if per_image:
        valid = torch.arange(longest, device=x.device) < k[:, None]
    elif patch_valid is not None:
        valid = patch_valid.gather(1, top)
    if valid is not None:
        kept.valid = torch.cat([valid.new_ones(valid.shape[0], p), valid], 1)
    if not fuse:
        return x_kept, kept
    if per_image or patch_valid is not None:
        raise ValueError("fusing dropped tokens is only supported with one count for the whole batch")
    dropped = torch.ones_like(scores, dtype=torch.bool).scatter(1, top, False)
    fused = torch.einsum("bn,bnc->bc", (scores * dropped).to(x.dtype), x[:, p:])
    sizes = state.sizes(x)[:, p:]
    fused_size = (sizes * dropped[..., None]).sum(1, keepdim=True)
    source = None
    if state.source is not None:
        source = torch.cat([kept.source, (state.source[:, p:] & dropped[..., None]).any(1, keepdim=True)], 1)
    out = TokenState(
        num_prefix=p,
        pos=torch.cat([kept.pos, kept.pos.new_full((x.shape[0], 1), -1)], 1),
        size=torch.cat([kept.sizes(x_kept), fused_size], 1),
        source=source,
    )
    return torch.cat([x_kept, fused[:, None]], 1), out


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
    A token finds its most similar B token by cosine similarity of ``metric`` ([B, N, C]); the
    ``r`` best-matched A tokens are merged into their partners by a size-weighted average and sizes
    add up; ``r`` is capped at half the patches. Output: prefix, unmerged A patches, B patches.
    With prefix tokens the unmerged A patches keep their current order; without any (no class
    token) they follow match score, as in the reference.
    """
    p = state.num_prefix
    r = min(r, state.num_patches // 2)
    if r <= 0:
        return x, state
    if state.valid is not None:
        raise ValueError("bipartite merging needs one token count for the whole batch (no padding)")
    prefix_a, prefix_b = (p + 1) // 2, p // 2  # prefix tokens at even / odd positions
    with torch.no_grad():
        m = metric / metric.norm(dim=-1, keepdim=True)
        similarity = m[:, ::2] @ m[:, 1::2].transpose(1, 2)
        similarity[:, :prefix_a] = float("-inf")
        similarity[:, :, :prefix_b] = float("-inf")
        best, partner = similarity.max(dim=-1)
        compiling = torch.compiler.is_compiling()
        if p and compiling:
            src, unmerged = _split_by_rank(best, r)
            unmerged = unmerged[:, prefix_a:]
        else:  # eager: an argsort and a sort are fewer kernels (the same tokens, tested)
            src, unmerged = best.argsort(dim=-1, descending=True).split([r, best.shape[1] - r], dim=1)
            if p:
                unmerged = unmerged.sort(dim=1).values[:, prefix_a:]
        dst = partner.gather(1, src)

    def split(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return t[:, :p], t[:, ::2], t[:, 1::2]

    c = x.shape[-1]
    sizes = state.sizes(x)
    (x_pre, xa, xb), (s_pre, sa, sb) = split(x), split(sizes)
    if compiling:  # one small matmul adds the sources into their destinations: Inductor has no scatter-add
        onehot = dst[:, None, :] == torch.arange(xb.shape[1], device=x.device)[:, None]  # [B, N_b, r]
        added = onehot.to(x.dtype) @ gather_tokens(torch.cat([xa * sa, sa], -1), src)
        b_sum, b_size = xb * sb + added[..., :c], sb + added[..., c:]
    else:
        b_sum = (xb * sb).scatter_add(1, dst[..., None].expand(-1, -1, c), gather_tokens(xa * sa, src))
        b_size = sb.scatter_add(1, dst[..., None], gather_tokens(sa, src))
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
