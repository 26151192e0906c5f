"""Classification accuracy of a model over a data loader, and the MACs of exactly the images evaluated.

Both are kept as counts (correct top-1, correct top-5, images, summed MACs), so an evaluation split
over torchrun's ranks (:mod:`vitprune.measure.shards`) sums them and equals one process exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vitprune.measure.bench import precision_context
from vitprune.measure.macs import metered
from vitprune.measure.shards import summed
from vitprune.models.device import model_device
from vitprune.tokens.families.base import original_class

NEEDS_HEAD = (
    "accuracy needs class scores: load the model with its classifier (e.g. ViTForImageClassification, "
    "a timm model with num_classes > 0)"
)


def missing_head(model: nn.Module) -> str | None:
    """Why ``model`` gives no class scores, or None when it has a classifier: a Hugging Face encoder
    without a head (``CLIPVisionModel``, ``Dinov2WithRegistersModel``: its base model is itself) or a
    timm model built with ``num_classes=0`` (it returns features)."""
    name = original_class(model).__name__
    if getattr(model, "base_model", None) is model:
        return f"{name} is an encoder without a classification head"
    if getattr(model, "num_classes", None) == 0:
        return f"{name} has num_classes=0 (no classifier; it returns features)"
    return None


def _tally(
    model: nn.Module, loader: DataLoader, device, precision: str, progress: bool, accuracy: bool
) -> list[int]:
    """[correct top-1, correct top-5, images] over ``loader`` (top-1/top-5 stay 0 without ``accuracy``)."""
    device = torch.device(device) if device is not None else model_device(model)
    model.eval().to(device)
    correct1 = correct5 = total = 0
    with torch.inference_mode(), precision_context(device, precision):
        for images, labels in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
            images, labels = images.to(device), labels.to(device)
            out = model(images)
            total += labels.numel()
            if not accuracy:
                continue
            logits = getattr(out, "logits", out).float()  # a transformers model returns an output object
            k = min(5, logits.shape[-1])
            hits = logits.topk(k, dim=-1).indices == labels[:, None]
            correct1 += int(hits[:, 0].sum())
            correct5 += int(hits.any(dim=-1).sum())
    return [correct1, correct5, total]


def _percent(correct1: float, correct5: float, total: float) -> dict[str, float]:
    if total == 0:
        raise ValueError("evaluate(): the loader yielded no samples")
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total, "n": int(total)}


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    combine: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy in percent and the number of samples: ``{"top1", "top5", "n"}``.

    Runs in eval mode under ``torch.inference_mode()``, on ``device`` (default: where
    the model's parameters are). With fewer than five classes, "top-5" is top-k over
    all classes, i.e. 100%. ``combine``: ``loader`` holds this rank's share and the counts are
    summed over ranks. A model without a classifier is refused (:func:`missing_head`).
    """
    reason = missing_head(model)
    if reason is not None:
        raise ValueError(f"{reason}; {NEEDS_HEAD}")
    counts = torch.tensor(_tally(model, loader, device, precision, progress, accuracy=True))
    return _percent(*(summed(counts) if combine else counts.double()).tolist())


def macs_sums(meter) -> list[float]:
    """[useful MACs, executed MACs, dense MACs] summed over the metered images; zeros if none ran."""
    if not meter.shapes:
        return [0.0, 0.0, 0.0]
    report = meter.report()
    n = report.per_image.numel()
    return [float(report.per_image.double().sum()), float(report.executed.double().sum()), report.dense * n]


def evaluate_macs(
    model: nn.Module,
    loader: DataLoader,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    combine: bool = False,
) -> dict:
    """:func:`evaluate` plus the MACs of exactly the images it evaluated, from the same pass.

    ``gmacs`` is the mean useful GMACs per image (each image's own tokens), ``executed_gmacs`` the mean
    GMACs the batches really ran (an input-adaptive method's padding included), ``macs_ratio`` the
    useful share of the dense model's. A model without a classifier (a headless encoder) gets the
    MACs and, instead of top-1/top-5, ``accuracy`` saying why it was not measured. ``combine``: as
    for :func:`evaluate`; every count, MACs included, is summed over ranks before any mean.
    """
    headless = missing_head(model)
    with metered(model) as meter:
        counts = _tally(model, loader, device, precision, progress, accuracy=headless is None)
    totals = torch.tensor([*counts, *macs_sums(meter)], dtype=torch.float64)
    correct1, correct5, total, useful, executed, dense = (summed(totals) if combine else totals).tolist()
    metrics = _percent(correct1, correct5, total)
    if headless is not None:
        metrics = {"n": metrics["n"], "accuracy": f"not measured: {headless}; {NEEDS_HEAD}"}
    return {
        **metrics,
        "gmacs": useful / total / 1e9,
        "executed_gmacs": executed / total / 1e9,
        "macs_ratio": useful / dense,
    }
