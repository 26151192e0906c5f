"""The training loss of a segmenter: pixel cross-entropy of its upsampled patch logits (Segmenter,
Strudel et al., ICCV 2021), as an objective for :func:`vitprune.train.loop.fit`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitprune.segment.head import pixel_logits


def pixel_loss(
    net: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    *,
    num_prefix: int,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy over every pixel of ``maps`` ([B, H, W] class indices); no distillation."""
    if teacher_logits is not None:
        raise ValueError("a segmenter trains without distillation")
    logits = pixel_logits(net(images), num_prefix, tuple(maps.shape[-2:]))
    return F.cross_entropy(logits, maps.long(), label_smoothing=label_smoothing)
