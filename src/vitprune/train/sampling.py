"""Samplers whose order depends only on (seed, epoch, rank), so training can resume exactly."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler, Sampler


def train_sampler(size: int, seed: int, rank: int = 0, world_size: int = 1) -> DistributedSampler:
    """Shuffled indices for one rank: a permutation seeded by ``seed + epoch`` (call ``set_epoch``).

    Works without a process group (``world_size=1`` is a plain seeded shuffle). With
    several ranks each gets a disjoint slice of the same permutation; torch pads by
    repeating samples so all ranks take the same number of steps, which is harmless
    for training but not for evaluation (see :class:`ShardSampler`).
    """
    return DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` below ``size``: every sample on exactly one rank, no padding.

    Ranks may get one sample more or less than each other; that is fine for evaluation,
    which sums counts over ranks instead of stepping in lock-step.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is invalid for world size {world_size}")
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
