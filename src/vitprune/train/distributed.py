"""Multi-process training helpers for ``torchrun``: process group, rank queries, sharded evaluation.

Without torchrun's environment (``RANK``/``WORLD_SIZE``) everything degrades to a
single process: ``rank() == 0``, ``world_size() == 1`` and collectives are no-ops.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vitprune.data.batched import BatchLoader, build_loader
from vitprune.measure.evaluate import evaluate
from vitprune.models.device import model_device
from vitprune.train.sampling import ShardSampler


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or anything setting its variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup() -> torch.device:
    """Join the process group when launched by torchrun, and return this process's device.

    Uses NCCL and GPU ``LOCAL_RANK`` when CUDA is available, else gloo on the CPU.
    Outside torchrun nothing is initialised and the device is the first GPU or the CPU.
    """
    cuda = torch.cuda.is_available()
    if not launched():
        return torch.device("cuda" if cuda else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group("nccl" if cuda else "gloo")
    return device


def is_distributed() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that logs and writes checkpoints."""
    return rank() == 0


def barrier() -> None:
    """Wait for all ranks (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if is_distributed():
        dist.destroy_process_group()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over ranks, in float64 (exact for integer counts below 2**53)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: object) -> list:
    """``obj`` from every rank, in rank order (``[obj]`` when not distributed).

    Objects travel between this job's own processes only; nothing is written to disk.
    """
    if not is_distributed():
        return [obj]
    objects = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


def evaluate_sharded(
    model: nn.Module,
    loader: BatchLoader | DataLoader,
    device: torch.device | None = None,
    precision: str = "fp32",
    progress: bool = False,
) -> dict[str, float]:
    """:func:`~vitprune.measure.evaluate.evaluate` on this rank's shard, with counts summed over ranks.

    ``loader`` must give each sample to exactly one rank (e.g. with :class:`ShardSampler`);
    the result then equals a single-process evaluation over the whole dataset.
    """
    device = device if device is not None else model_device(model)
    correct1 = correct5 = total = 0
    if len(loader) > 0:
        local = evaluate(model, loader, device=device, precision=precision, progress=progress)
        total = local["n"]
        correct1, correct5 = round(local["top1"] * total / 100), round(local["top5"] * total / 100)
    correct1, correct5, total = all_sum([correct1, correct5, total], device)
    if total == 0:
        raise ValueError("evaluation loader yielded no samples on any rank")
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "n": int(total)}


def evaluate_distributed(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: torch.device | None = None,
    precision: str = "fp32",
    workers: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Top-1/top-5 over ``dataset`` split across ranks with no sample repeated or dropped.

    Returns ``{"top1", "top5", "n"}`` identical to single-process evaluation. Every rank must call it.
    """
    sampler = ShardSampler(len(dataset), rank(), world_size())
    loader = build_loader(dataset, batch_size, sampler, workers=workers)
    return evaluate_sharded(model, loader, device, precision, progress)
