"""Images with per-pixel label maps, batched as :class:`~vitprune.data.batched.TensorImageDataset`
batches: a loader over them yields ``(inputs, label maps)``."""

from __future__ import annotations

import torch
from torch import nn

from vitprune.data import CLUTTER_NAMES
from vitprune.data.batched import TensorImageDataset
from vitprune.data.clutter import BACKGROUND, fashion_mnist_clutter


class SegmentationDataset(TensorImageDataset):
    """uint8 images ``[N, C, H, W]`` and their uint8 label maps ``[N, H, W]`` (kept as uint8: a batch's
    maps become int64 only in the loss and the scores), prepared for ``model``."""

    def __init__(self, images: torch.Tensor, maps: torch.Tensor, classes: int, model: nn.Module):
        if maps.shape[0] != images.shape[0] or maps.shape[1:] != images.shape[2:]:
            raise ValueError(f"expected one [H, W] label map per image, got {tuple(maps.shape)}")
        super().__init__(images, torch.zeros(len(images)), model)
        self.labels, self.classes = maps, classes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare(self.images[index : index + 1])[0], self.labels[index]


def segmentation_dataset(data: str, split: str, model: nn.Module) -> SegmentationDataset:
    """The label maps of ``data`` (``fashion-mnist-clutter``: ten item classes and background)."""
    if data.lower() not in CLUTTER_NAMES:
        raise ValueError(
            f"--data {data!r} has no per-pixel labels; segmentation needs one of {list(CLUTTER_NAMES)}"
        )
    canvases = fashion_mnist_clutter(split, model)
    return SegmentationDataset(canvases.images, canvases.masks, BACKGROUND + 1, model)
