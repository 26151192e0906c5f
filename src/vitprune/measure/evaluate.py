"""Classification accuracy of a model over a data loader."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vitprune.measure.bench import precision_context
from vitprune.measure.macs import metered
from vitprune.models.device import model_device


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy in percent and the number of samples: ``{"top1", "top5", "n"}``.

    Runs in eval mode under ``torch.inference_mode()``, on ``device`` (default: where
    the model's parameters are). With fewer than five classes, "top-5" is top-k over
    all classes, i.e. 100%.
    """
    device = torch.device(device) if device is not None else model_device(model)
    model.eval().to(device)
    correct1 = correct5 = total = 0
    with torch.inference_mode(), precision_context(device, precision):
        for images, labels in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
            images, labels = images.to(device), labels.to(device)
            out = model(images)
            logits = getattr(out, "logits", out).float()  # a transformers model returns an output object
            k = min(5, logits.shape[-1])
            hits = logits.topk(k, dim=-1).indices == labels[:, None]
            correct1 += int(hits[:, 0].sum())
            correct5 += int(hits.any(dim=-1).sum())
            total += labels.numel()
    if total == 0:
        raise ValueError("evaluate(): the loader yielded no samples")
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "n": total}


def evaluate_macs(model: nn.Module, loader: DataLoader, **kwargs) -> dict[str, float]:
    """:func:`evaluate` plus the MACs of exactly the images it evaluated, from the same pass.

    ``gmacs`` is the mean useful GMACs per image (each image's own tokens), ``executed_gmacs`` the mean
    GMACs the batches really ran (an input-adaptive method's padding included), ``macs_ratio`` the
    useful share of the dense model's.
    """
    with metered(model) as meter:
        metrics = evaluate(model, loader, **kwargs)
    report = meter.report()
    return {
        **metrics,
        "gmacs": report.mean / 1e9,
        "executed_gmacs": report.executed_mean / 1e9,
        "macs_ratio": report.ratio,
    }
