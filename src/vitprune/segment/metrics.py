"""Segmentation scores from a confusion matrix of pixel counts: kept as counts, so a split evaluation
sums them exactly. Mean IoU averages over the classes present in prediction or truth."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion(predicted: Tensor, truth: Tensor, classes: int) -> Tensor:
    """int64 ``[classes, classes]`` pixel counts, row = true class, column = predicted class."""
    index = truth.reshape(-1).long() * classes + predicted.reshape(-1).long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def scores(counts: Tensor) -> dict:
    """``{"miou", "pixel_acc", "iou"}`` in percent from a confusion matrix; ``iou`` per class, None for
    a class that is neither true nor predicted anywhere (it does not count in the mean)."""
    counts = counts.double()
    hits = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - hits
    if counts.sum() == 0:
        raise ValueError("no pixels were scored")
    present = union > 0
    iou = torch.where(present, hits / union.clamp_min(1), torch.nan) * 100
    return {
        "miou": float(iou[present].mean()),
        "pixel_acc": float(hits.sum() / counts.sum() * 100),
        "iou": [None if not p else round(float(v), 4) for v, p in zip(iou, present, strict=True)],
    }
