"""Where a segmenter's mean IoU goes: wrong item classes or wrong masks (issue 31).

Each test canvas of ``fashion-mnist-clutter`` holds one item, so a segmenter's errors split in two: which
pixels it calls item (the mask) and which item class it gives them. Three scores of the same predictions:
- ``segmenter``: as predicted;
- ``classifier class``: every pixel predicted as an item takes the class a classifier predicts for the
  whole canvas (what a decoder that took its item class from that classifier would score);
- ``true class``: every pixel predicted as an item takes the canvas's true class (the masks alone).
Beside them, the share of item pixels given the right class, a wrong item class or background, and how
often the majority class of a canvas's predicted item pixels is its true class.

    .venv/bin/python benchmarks/segmentation_errors.py --name segmentation_errors_clutter \\
        --model clutter-seg-196 --classifier clutter-vit-196
"""

from __future__ import annotations

import argparse

import torch
from common import accuracy_arguments, notes, save_results
from torch.utils.data import Subset
from tqdm import tqdm

from vitprune.data import build_loader
from vitprune.models.load import load_model
from vitprune.segment.data import segmentation_dataset
from vitprune.segment.head import pixel_logits
from vitprune.segment.metrics import confusion, scores


def canvas_classes(maps: torch.Tensor, background: int) -> torch.Tensor:
    """Each canvas's item class from its label map ``[B, H, W]`` (one item per canvas), ``[B]``; -1
    where no pixel is the item's."""
    items = torch.where(maps != background, maps.long(), -1)
    return items.flatten(1).max(1).values


def relabel(predicted: torch.Tensor, classes: torch.Tensor, background: int) -> torch.Tensor:
    """``predicted`` with every item pixel given its canvas's entry of ``classes`` (kept where it is -1)."""
    keep = (predicted == background) | (classes < 0)[:, None, None]
    return torch.where(keep, predicted, classes[:, None, None].expand_as(predicted))


def majority_right(predicted: torch.Tensor, truth: torch.Tensor, background: int) -> int:
    """Canvases whose predicted item pixels are mostly of their true class."""
    right = 0
    for pixels, true in zip(predicted, truth.tolist(), strict=True):
        items = pixels[pixels != background]
        right += bool(len(items)) and int(items.mode().values) == true
    return right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    accuracy_arguments(ap, "clutter-seg-196", "a segmenter (zoo name)")
    ap.add_argument("--classifier", default="clutter-vit-196", help="a classifier of the same canvases")
    ap.set_defaults(data="fashion-mnist-clutter")
    args = ap.parse_args()
    segmenter, classifier = load_model(args.model), load_model(args.classifier)
    k = segmenter.num_classes
    background = k - 1
    test = segmentation_dataset(args.data, args.split, segmenter)
    if args.limit:
        test = Subset(test, range(args.limit))
    counts = {
        name: torch.zeros(k, k, dtype=torch.int64) for name in ("segmenter", "classifier class", "true class")
    }
    pixels = torch.zeros(3, dtype=torch.int64)  # item pixels: right class, wrong item class, background
    majority = 0
    with torch.inference_mode():
        for images, maps in tqdm(build_loader(test, 250), desc="canvases", unit="batch"):
            logits = segmenter(images).float()
            predicted = pixel_logits(logits, segmenter.num_prefix_tokens, tuple(maps.shape[-2:])).argmax(1)
            truth = canvas_classes(maps, background)
            guessed = classifier(images).argmax(1)
            counts["segmenter"] += confusion(predicted, maps, k)
            counts["classifier class"] += confusion(relabel(predicted, guessed, background), maps, k)
            counts["true class"] += confusion(relabel(predicted, truth, background), maps, k)
            item = maps != background
            pixels += torch.stack(
                [
                    (predicted == maps)[item].sum(),
                    ((predicted != maps) & (predicted != background))[item].sum(),
                    (predicted == background)[item].sum(),
                ]
            )
            majority += majority_right(predicted, truth, background)
    shares = (pixels.double() / pixels.sum() * 100).tolist()
    rows = [
        {
            "item class from": name,
            "miou": round(result["miou"], 2),
            "pixel_acc": round(result["pixel_acc"], 2),
            **(
                {
                    "item px right class %": round(shares[0], 1),
                    "item px wrong class %": round(shares[1], 1),
                    "item px background %": round(shares[2], 1),
                    "canvas majority class right %": round(majority / len(test) * 100, 1),
                }
                if name == "segmenter"
                else {}
            ),
        }
        for name, result in ((name, scores(c)) for name, c in counts.items())
    ]
    extra = {"test_images": len(test), "split": args.split, **notes(args.notes)}
    print(save_results(args.name, args.model, rows, **extra))


if __name__ == "__main__":
    main()
