"""One threshold over a pool of ranked layers, applied by rank so it removes an exact count.

DIMAP (He et al., ICLR 2024, §3.2) compares scores of all layers of one module against a single
threshold. A float threshold cannot hit a budget exactly when scores tie, so the threshold is
found as the k-th smallest pooled score and the weights that tie with it are taken in a fixed
order (layers in model order; inside a layer, the later rank first) until exactly k are removed.
Because scores are non-increasing along each layer's rank order, a layer's removed weights are
always its last ranks: the smallest magnitudes, as in the paper.
"""

from __future__ import annotations

import torch

from vitprune.weights.scores import Ranked

_ONE_BITS = int(torch.tensor(1.0, dtype=torch.float32).view(torch.int32))


def _as_float(bits: int) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.int32).view(torch.float32)


def _count(pool: list[Ranked], t: torch.Tensor, right: bool) -> list[int]:
    """Per layer, how many scores are < t (right=False) or ≤ t (right=True)."""
    return [int(torch.searchsorted(r.ascending, t, right=right)) for r in pool]


def removal_counts(pool: list[Ranked], k: int) -> list[int]:
    """How many of each layer's lowest-scored weights to remove so that exactly ``k`` go in all.

    Scores lie in [0, 1]; non-negative float32 values order like their int32 bit patterns, so
    the k-th smallest score is found by bisection on those bits (31 steps, one binary search per
    layer each), without sorting the pooled scores.
    """
    total = sum(r.size for r in pool)
    if not 0 <= k <= total:
        raise ValueError(f"cannot remove {k} of {total} weights")
    if k == 0:
        return [0] * len(pool)
    lo, hi = 0, _ONE_BITS  # smallest bits whose "≤" count reaches k lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(_count(pool, _as_float(mid), right=True)) >= k:
            hi = mid
        else:
            lo = mid + 1
    threshold = _as_float(lo)
    below = _count(pool, threshold, right=False)
    tied = [n - b for n, b in zip(_count(pool, threshold, right=True), below, strict=True)]
    need = k - sum(below)
    counts = []
    for b, t in zip(below, tied, strict=True):
        take = min(t, need)
        counts.append(b + take)
        need -= take
    return counts


def keep_mask(ranked: Ranked, removed: int, shape: torch.Size) -> torch.Tensor:
    """Boolean mask (True = kept) of a layer whose ``removed`` last-ranked weights are pruned."""
    mask = torch.ones(ranked.size, dtype=torch.bool)
    if removed:
        mask[ranked.order[ranked.size - removed :]] = False
    return mask.view(shape)
