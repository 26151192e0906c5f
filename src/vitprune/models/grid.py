"""Starting weights made at another patch grid: timm's own resampling, as ``pretrained=True`` does.

A checkpoint of a timm ``VisionTransformer`` trained at one patch size or image size fits a model
built with another only in two tensors: the position embedding (one row per patch) and the patch
projection (one kernel per patch size). timm resamples both when it loads pretrained weights at a
new size (``checkpoint_filter_fn``: bicubic position embedding, prefix rows kept; FlexiViT's
pseudo-inverse resize of the kernel). :func:`fit_grid` applies that same filter to a local
checkpoint when, and only when, those two tensors are all that differ; any other mismatch is left
for the strict load to report.
"""

from __future__ import annotations

import sys

import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

GRID_KEYS = frozenset({"pos_embed", "patch_embed.proj.weight"})


def grid_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of ``state`` whose shapes differ from ``model``'s only because of the patch grid."""
    if not isinstance(model, VisionTransformer):
        return []
    own = model.state_dict()
    if set(own) != set(state):
        return []
    differ = [k for k, v in own.items() if v.shape != state[k].shape]
    return differ if differ and set(differ) <= GRID_KEYS else []


def fit_grid(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """``state`` resampled to ``model``'s patch grid by timm's filter when only the grid differs."""
    keys = grid_mismatch(model, state)
    if not keys:
        return state
    before = {k: tuple(state[k].shape) for k in keys}
    fitted = checkpoint_filter_fn(dict(state), model)
    moved = ", ".join(f"{k} {before[k]} -> {tuple(fitted[k].shape)}" for k in keys)
    print(f"{source}: resampled to the model's patch grid (timm's filter): {moved}", file=sys.stderr)
    return fitted
