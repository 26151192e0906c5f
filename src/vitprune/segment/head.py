"""A segmenter is a timm ViT whose head classifies every token: ``global_pool=''`` and ``num_classes``
the number of segment classes (Segmenter's linear decoder, Strudel et al., ICCV 2021). Its per-patch
logits, on the full patch grid, are upsampled bilinearly to pixels."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def is_segmenter(model: nn.Module) -> bool:
    """Whether ``model`` classifies every token (a timm ViT built with ``global_pool=''`` and a head)."""
    return getattr(model, "global_pool", None) == "" and getattr(model, "num_classes", 0) > 0


def segmenter_kwargs(num_classes: int) -> dict:
    """The ``timm.create_model`` arguments that make a ViT a segmenter of ``num_classes`` classes."""
    return {"global_pool": "", "num_classes": num_classes}


def pixel_logits(logits: Tensor, num_prefix: int, size: tuple[int, int]) -> Tensor:
    """Token logits ``[B, prefix + h·w, K]`` (the full patch grid, raster order) → ``[B, K, H, W]``
    at pixel ``size`` (H, W), bilinearly upsampled; the grid keeps the pixels' aspect ratio."""
    b, n, k = logits.shape
    patches = n - num_prefix
    h = round(math.sqrt(patches * size[0] / size[1]))
    if h < 1 or patches % h:
        raise ValueError(f"{patches} patch logits do not form a grid with the aspect of {tuple(size)} pixels")
    grid = logits[:, num_prefix:].transpose(1, 2).reshape(b, k, h, patches // h)
    return F.interpolate(grid, size=tuple(size), mode="bilinear", align_corners=False)
