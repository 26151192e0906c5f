"""STAR's offline calibration: the LRP inter-layer prior and the per-layer ACS, on N images.

The paper uses 192 training images and the top-5 predicted classes as explanation targets.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import torch
from torch import Tensor, nn

from vitprune.calibrate.acs import layer_acs
from vitprune.calibrate.artifact import Calibration
from vitprune.calibrate.lrp import star_prior

DEFAULT_IMAGES = 192


def calibration_images(dataset, n: int = DEFAULT_IMAGES, seed: int = 0) -> Tensor:
    """``n`` images drawn without replacement (seeded) from ``dataset``, stacked into one tensor."""
    if not 0 < n <= len(dataset):
        raise ValueError(f"n={n} calibration images requested; allowed: 1..{len(dataset)}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([dataset[int(i)][0] for i in order])


def calibrate_star(
    model: nn.Module,
    images: Tensor,
    top_k: int = 5,
    targets: str = "per_image",
    dtype: torch.dtype = torch.float64,
    progress: bool = True,
    meta: dict | None = None,
) -> Calibration:
    """Prior ``[L, patches]`` and ACS ``[L]`` of ``model`` on ``images``; ``meta`` is recorded with them."""
    start = time.perf_counter()
    prior = star_prior(model, images, top_k=top_k, targets=targets, dtype=dtype, progress=progress)
    acs = layer_acs(model, images)
    info = {
        "method": "star",
        "prior": "lrp-transformer-attribution",
        "images": len(images),
        "top_k": top_k,
        "targets": targets,
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": round(time.perf_counter() - start, 1),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        **(meta or {}),
    }
    return Calibration(prior=prior.float(), acs=acs, meta=info)
