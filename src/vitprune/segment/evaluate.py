"""Segmentation quality of a segmenter over a loader of label maps, the MACs of exactly the images
evaluated, and, against the dense model, the fidelity of the patch features a token method restores.

Everything is kept as counts or sums (pixel confusion, cosine sums, images, MACs), so an evaluation
split over torchrun's ranks sums them and equals one process exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vitprune.measure.bench import precision_context
from vitprune.measure.evaluate import macs_sums
from vitprune.measure.macs import metered
from vitprune.measure.shards import summed
from vitprune.models.device import model_device
from vitprune.segment.head import pixel_logits
from vitprune.segment.metrics import confusion, scores


class _HeadInput:
    """Records what the classifier head reads: the patch features a decoder sees."""

    def __init__(self, model: nn.Module):
        self.value: Tensor | None = None
        self.handle = model.get_classifier().register_forward_pre_hook(self._keep)

    def _keep(self, _module, args) -> None:
        self.value = args[0]


def feature_cosine(features: Tensor, reference: Tensor, num_prefix: int) -> Tensor:
    """Per image, the mean cosine similarity of its patch features to the reference's ``[B]``."""
    patches, target = features[:, num_prefix:].float(), reference[:, num_prefix:].float()
    return F.cosine_similarity(patches, target, dim=-1).mean(1)


def evaluate_segmentation(
    model: nn.Module,
    loader: DataLoader,
    reference: nn.Module | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    combine: bool = False,
) -> dict:
    """Mean IoU, pixel accuracy and per-class IoU (percent) over ``loader``'s ``(images, label maps)``;
    the MACs of those images as :func:`vitprune.measure.evaluate.evaluate_macs` counts them; with
    ``reference`` (the same segmenter without a token method) ``fidelity``, the mean over images of
    the cosine similarity of each patch feature the head reads to the reference's.

    ``model`` must give every patch a logit: a token method runs with ``dense=True``. ``combine``:
    ``loader`` holds this rank's share and every count is summed over ranks.
    """
    device = torch.device(device) if device is not None else model_device(model)
    classes, prefix = model.num_classes, model.num_prefix_tokens
    grid = prefix + model.patch_embed.num_patches
    counts = torch.zeros(classes, classes, dtype=torch.int64)
    cosine, images_seen = 0.0, 0
    heads = [] if reference is None else [_HeadInput(model), _HeadInput(reference)]  # fidelity reads them
    for m in (model, reference):
        if m is not None:
            m.eval().to(device)
    try:
        with torch.inference_mode(), precision_context(device, precision), metered(model) as meter:
            for images, maps in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
                images, maps = images.to(device), maps.to(device)
                logits = model(images).float()
                if logits.shape[1] != grid:
                    raise ValueError(
                        f"the segmenter gave {logits.shape[1]} token logits, not one per patch and prefix "
                        f"token ({grid}): apply its token method with dense=True"
                    )
                predicted = pixel_logits(logits, prefix, tuple(maps.shape[-2:])).argmax(1)
                counts += confusion(predicted, maps, classes).cpu()
                images_seen += len(images)
                if reference is not None:
                    reference(images)
                    cosine += float(feature_cosine(heads[0].value, heads[1].value, prefix).sum())
    finally:
        for head in heads:
            head.handle.remove()
    totals = summed(torch.tensor([*counts.flatten().tolist(), cosine, images_seen, *macs_sums(meter)]))
    cells = classes * classes
    counts, (cosine, total, useful, executed, dense) = totals[:cells], totals[cells:].tolist()
    if total == 0:
        raise ValueError("evaluate_segmentation(): the loader yielded no samples")
    result = {**scores(counts.reshape(classes, classes)), "n": int(total)}
    if reference is not None:
        result["fidelity"] = cosine / total
    return {
        **result,
        "gmacs": useful / total / 1e9,
        "executed_gmacs": executed / total / 1e9,
        "macs_ratio": useful / dense,
    }
