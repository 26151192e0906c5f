"""Capture, seed and restore every random number generator training touches.

Dropout and drop-path draw from torch's generator (CPU, or CUDA on a GPU), timm's
Mixup/CutMix from numpy's global generator, and user code may use Python's
``random``. A captured state splits into tensors (stored in safetensors) and plain
values (stored in JSON); nothing is pickled.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed torch (all devices), numpy and Python ``random`` with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture(device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """Current generator states as ``(tensors, json_values)``.

    ``tensors`` holds torch's CPU state (and the CUDA state of ``device`` when it
    is a GPU) as uint8 tensors; ``json_values`` holds numpy's and Python's states
    as lists.
    """
    tensors = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    version, mt_state, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    values = {
        "python": [version, list(mt_state), gauss_next],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, values


def restore(tensors: dict[str, torch.Tensor], values: dict, device: torch.device) -> None:
    """Put back states produced by :func:`capture`."""
    torch.set_rng_state(tensors["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    version, mt_state, gauss_next = values["python"]
    random.setstate((version, tuple(mt_state), gauss_next))
    name, keys, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
