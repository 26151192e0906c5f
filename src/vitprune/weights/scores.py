"""DIMAP's data-free weight metric (the LAMP score), computed within one layer.

He et al., DIMAP (ICLR 2024), §3.2 Eq. 10: sort a layer's weights by magnitude, largest first,
w_(1) ≥ w_(2) ≥ …; the weight at rank j scores

    score(w_(j)) = w_(j)² / Σ_{i ≤ j} w_(i)²,

its share of the Frobenius energy of itself and every larger weight of the same layer (the score
of Lee et al.'s LAMP). The largest weight of each layer scores exactly 1, every nonzero weight
scores in (0, 1], and the ranking inside a layer is the magnitude ranking. An exactly-zero weight
(already pruned) scores 0.

Ties: equal magnitudes are ordered by flat index (a stable sort), so the earlier weight gets the
larger score; the result is deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Ranked:
    """One layer's units sorted by energy, largest first, and their scores in ascending order.

    ``order[j]`` is the flat index of the unit at rank j. Scores are non-increasing along the ranks
    (a smaller energy lowers the numerator, a longer prefix raises the denominator), so
    ``ascending[i]`` is the score of rank ``size - 1 - i`` and can be binary-searched directly.
    """

    order: Tensor
    ascending: Tensor

    @property
    def size(self) -> int:
        return self.order.numel()

    @property
    def scores(self) -> Tensor:
        """Scores in rank order (largest first)."""
        return self.ascending.flip(0)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed torch CPU operations on one intra-op thread, then restore the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _score(order: Tensor, energy_sorted: Tensor) -> Ranked:
    """Scores of float64 energies already sorted largest first (overwrites ``energy_sorted``)."""
    prefix = torch.cumsum(energy_sorted, 0).clamp_min_(torch.finfo(torch.float64).tiny)
    scores = energy_sorted.div_(prefix).to(torch.float32)
    return Ranked(order=order, ascending=scores.flip(0))


def rank(energy: Tensor) -> Ranked:
    """Rank a 1-D tensor of non-negative energies (e.g. a unit's summed w²) and score each rank."""
    energy = energy.detach().reshape(-1).to(torch.float64)
    values, order = torch.sort(energy, descending=True, stable=True)
    return _score(order, values)


def rank_weight(weight: Tensor) -> Ranked:
    """Rank the single weights of one layer by |w| (energy w², exact in float64) and score each rank.

    Sorting dominates the cost. Non-negative float32 values order like their int32 bit patterns,
    and a stable ascending sort of the negated patterns (a radix sort in PyTorch) is several times
    faster than a float sort; equal magnitudes keep flat-index order. The sorted keys are turned
    back into the sorted magnitudes, which avoids a gather. The sort runs on one thread: PyTorch's
    parallel kernels cost ~0.1 s per call in thread start-up on a busy machine, far more than a small
    layer takes.
    """
    with one_thread():
        magnitude = weight.detach().reshape(-1).to(device="cpu", dtype=torch.float32).abs()
        keys, order = torch.sort(magnitude.view(torch.int32).neg_(), stable=True)
        values = keys.neg_().view(torch.float32).to(torch.float64).square_()
        return _score(order, values)


def weight_scores(weight: Tensor) -> Tensor:
    """DIMAP score of every weight of one layer, in the weight's own layout (float32)."""
    ranked = rank_weight(weight)
    out = torch.empty(ranked.size, dtype=torch.float32)
    out[ranked.order] = ranked.scores
    return out.view(weight.shape)
