"""Cluttered Fashion-MNIST: one item near native resolution, at a random place on a cluttered canvas.

The construction of cluttered MNIST (Mnih et al. 2014, "Recurrent Models of Visual Attention";
Jaderberg et al. 2015, "Spatial Transformer Networks": 8x8 fragments of other digits on a 60x60
canvas), built from Fashion-MNIST: each 56x56 canvas (196 patches of 4x4 px, DeiT's token count)
holds one 28x28 item, upscaled by a mild random factor (a side of 28 to 42 px, bilinear), at a
uniformly random position, over ``fragments`` 8x8 pieces cut from the ink-rich middle of *other*
items of the same split and dropped anywhere. Fragments overlap by maximum; the item's own (nonzero)
pixels cover whatever lies beneath them. A per-pixel label map gives the item's class on its own
pixels and :data:`BACKGROUND` elsewhere.

Canvases are a pure function of the split and the seed (numpy's PCG64), drawn for the whole split
at once: the same bytes on every run and in every process, in a few seconds for 70,000 canvases.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from vitprune.data.batched import TensorImageDataset
from vitprune.data.fashion_mnist import SPLITS, FashionMNIST

CANVAS = 56
FRAGMENT = 8
FRAGMENTS = 4  # cluttered MNIST's density on 60x60 (Mnih et al. 2014: 4 pieces); see the README
FRAGMENT_MARGIN = 4  # fragments are cut at least this far inside the 28x28 box, where the ink is
BACKGROUND = 10  # label-map value off the item: one past Fashion-MNIST's ten classes
SEED = 2015
SCALE = 1.5  # items drawn 28 to 42 px wide: a mild random scale, as objects vary in size on ImageNet
SPLIT_STREAMS = {"train": 0, "test": 1}


def clutter_canvases(
    images: np.ndarray,
    labels: np.ndarray,
    fragments: int = FRAGMENTS,
    scale: float = SCALE,
    seed: int = SEED,
    stream: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 items ``[N, 28, 28]`` and their labels → canvases and label maps, both uint8 ``[N, 56, 56]``.

    Canvas ``i`` holds item ``i``, upscaled to a side drawn uniformly from ``28 .. round(28 * scale)``
    px, and ``fragments`` pieces of items other than ``i``, all placed by a generator seeded with
    ``(seed, stream)``.
    """
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(
            f"expected uint8 items [N, H, W] and as many labels, "
            f"got {images.dtype} {images.shape} and {len(labels)} labels"
        )
    if fragments < 0:
        raise ValueError(f"fragments must be >= 0, got {fragments}")
    if len(images) < 2 and fragments > 0:
        raise ValueError(
            f"clutter needs 2 items or more (fragments come from other items), got {len(images)}"
        )
    n, size = len(images), images.shape[1]
    if not 1 <= scale <= CANVAS / size:
        raise ValueError(f"scale must be in [1, {CANVAS / size:g}] (the item must fit), got {scale}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream]))
    sides = rng.integers(size, round(size * scale) + 1, n)
    item_at = rng.integers(0, CANVAS - sides + 1, (2, n))
    sources = (np.arange(n) + rng.integers(1, max(n, 2), (fragments, n))) % n
    cut_at = rng.integers(FRAGMENT_MARGIN, size - FRAGMENT - FRAGMENT_MARGIN + 1, (fragments, 2, n))
    drop_at = rng.integers(0, CANVAS - FRAGMENT + 1, (fragments, 2, n))

    canvases = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    for k in range(fragments):
        piece = images[_window(sources[k], *cut_at[k], FRAGMENT)]
        where = _window(np.arange(n), *drop_at[k], FRAGMENT)
        canvases[where] = np.maximum(canvases[where], piece)
    masks = np.full((n, CANVAS, CANVAS), BACKGROUND, dtype=np.uint8)
    classes = labels.astype(np.uint8)[:, None, None]
    for side in np.unique(sides):
        index = np.flatnonzero(sides == side)
        item = upscale(images[index], side)
        where = _window(index, *item_at[:, index], side)
        ink = item > 0
        canvases[where] = np.where(ink, item, canvases[where])
        masks[where] = np.where(ink, classes[index], BACKGROUND)
    return canvases, masks


def upscale(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 ``[N, S, S]`` → ``[N, side, side]``, bilinear with half-pixel centres (PIL's and
    ``F.interpolate``'s convention), computed in float64 and rounded half up: the same bytes on any CPU."""
    source = images.shape[1]
    at = np.clip((np.arange(side) + 0.5) * source / side - 0.5, 0, source - 1)
    low = np.floor(at).astype(np.int64)
    high = np.minimum(low + 1, source - 1)
    weight = at - low
    pixels = images.astype(np.float64)
    rows = pixels[:, low] * (1 - weight)[:, None] + pixels[:, high] * weight[:, None]
    both = rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight
    return np.floor(both + 0.5).astype(np.uint8)


def _window(
    index: np.ndarray, top: np.ndarray, left: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fancy index of the ``size`` x ``size`` square at ``(top[i], left[i])`` of image ``index[i]``."""
    offsets = np.arange(size)
    return index[:, None, None], (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]


class ClutterDataset(TensorImageDataset):
    """A :class:`TensorImageDataset` of canvases that also carries ``masks``, their uint8 label maps
    ``[N, 56, 56]`` (the class on the item's pixels, :data:`BACKGROUND` elsewhere)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, model: nn.Module):
        super().__init__(images, labels, model)
        self.masks = masks


def fashion_mnist_clutter(
    split: str,
    model: nn.Module,
    root: str | os.PathLike | None = None,
    fragments: int = FRAGMENTS,
    scale: float = SCALE,
) -> ClutterDataset:
    """Cluttered Fashion-MNIST ``split`` for ``model``: train canvases from training items only,
    test canvases from test items only."""
    if split not in SPLITS:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; expected one of {sorted(SPLITS)}")
    raw = FashionMNIST(root, split=split)
    canvases, masks = clutter_canvases(
        raw.images[:, 0].numpy(), raw.labels.numpy(), fragments, scale, stream=SPLIT_STREAMS[split]
    )
    return ClutterDataset(torch.from_numpy(canvases).unsqueeze(1), raw.labels, torch.from_numpy(masks), model)
