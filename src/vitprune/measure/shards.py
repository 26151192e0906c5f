"""Evaluation split over ``torchrun``'s processes: each rank takes every world-size-th image (rank,
rank + W, ...: no image twice, none dropped, the last shard may be shorter) and counts, never means,
are summed over ranks with ``all_reduce``, so the result equals one process on the same images.

Without torchrun's variables (``RANK``, ``WORLD_SIZE``) there is one rank and nothing is summed.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or anything setting its variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join() -> None:
    """Join torchrun's process group (NCCL with CUDA, else gloo) unless joined or not launched."""
    if launched() and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def rank_and_world() -> tuple[int, int]:
    """(this rank, number of ranks); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_share(n: int) -> range:
    """Indices of the first ``n`` images this rank evaluates."""
    rank, world = rank_and_world()
    return range(rank, n, world)


def summed(values: torch.Tensor) -> torch.Tensor:
    """``values`` (float64 counts) summed over ranks; exact for integers below 2**53."""
    values = values.double()
    if rank_and_world()[1] > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        values = values.to(device)
        dist.all_reduce(values)
    return values.cpu()
