"""Cluttered Fashion-MNIST: deterministic canvases, upscaled items, label maps that locate them."""

import gzip
import hashlib
import struct

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from vitprune.data import build_dataset, build_loader
from vitprune.data.clutter import (
    BACKGROUND,
    CANVAS,
    FRAGMENT,
    ClutterDataset,
    clutter_canvases,
    fashion_mnist_clutter,
    upscale,
)
from vitprune.data.fashion_mnist import FashionMNIST, has_split, resolve_root

needs_fmnist = pytest.mark.skipif(
    not (has_split(resolve_root(), "test") and has_split(resolve_root(), "train")),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
# sha256 of the test split's canvases and label maps, first computed in another process: any change to
# the generator (or to its numpy draws) changes the data the zoo's clutter models were trained on.
TEST_SPLIT_SHA256 = "4e7d87abcfa3000b41930188fdede80f71ccba501583166ac39e6dc6d0654f43"


def canvas_model():
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=56, patch_size=8, depth=1, in_chans=1, num_classes=10
    )


def digest(dataset: ClutterDataset) -> str:
    return hashlib.sha256(dataset.images.numpy().tobytes() + dataset.masks.numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def test_canvases():
    return build_dataset("fashion-mnist-clutter", "test", canvas_model())


@needs_fmnist
def test_same_bytes_in_two_generations_and_as_pinned(test_canvases):
    again = fashion_mnist_clutter("test", canvas_model())
    assert torch.equal(again.images, test_canvases.images) and torch.equal(again.masks, test_canvases.masks)
    assert digest(test_canvases) == TEST_SPLIT_SHA256


@needs_fmnist
def test_shapes_dtypes_and_classification_api(test_canvases):
    items = FashionMNIST(split="test")
    assert isinstance(test_canvases, ClutterDataset)
    images, masks = test_canvases.images, test_canvases.masks
    assert images.shape == (10_000, 1, CANVAS, CANVAS) and images.dtype == torch.uint8
    assert masks.shape == (10_000, CANVAS, CANVAS) and masks.dtype == torch.uint8
    assert torch.equal(test_canvases.labels, items.labels)
    image, label = test_canvases[3]
    assert image.shape == (1, CANVAS, CANVAS) and image.dtype == torch.float32
    assert label == int(items.labels[3])
    inputs, labels = next(iter(build_loader(test_canvases, 16)))
    assert inputs.shape == (16, 1, CANVAS, CANVAS) and torch.equal(labels, items.labels[:16])


@needs_fmnist
def test_label_map_marks_exactly_the_items_pixels():
    """At scale 1, locate each item from its label map; the canvas there holds the item's ink, unaltered."""
    raw = FashionMNIST(split="test")
    items, labels = raw.images[:, 0].numpy(), raw.labels.numpy()
    canvases, masks = clutter_canvases(items, labels, scale=1, stream=1)
    on_item = masks != BACKGROUND
    ink = items > 0
    assert np.array_equal(on_item.sum((1, 2)), ink.sum((1, 2)))
    assert np.array_equal(masks[on_item], np.broadcast_to(labels[:, None, None], masks.shape)[on_item])
    top = on_item.any(2).argmax(1) - ink.any(2).argmax(1)
    left = on_item.any(1).argmax(1) - ink.any(1).argmax(1)
    assert top.min() >= 0 and left.min() >= 0 and top.max() <= CANVAS - 28 and left.max() <= CANVAS - 28
    rows = (top[:, None] + np.arange(28))[:, :, None]
    cols = (left[:, None] + np.arange(28))[:, None, :]
    index = np.arange(len(items))[:, None, None]
    assert np.array_equal(on_item[index, rows, cols], ink)
    assert np.array_equal(np.where(ink, canvases[index, rows, cols], 0), items)
    # positions spread over the whole canvas, not a fixed place
    assert len(np.unique(top)) == CANVAS - 28 + 1 and len(np.unique(left)) == CANVAS - 28 + 1


def test_items_are_upscaled_to_every_side_from_28_to_42_px_and_placed_anywhere():
    """Items of one flat value each: the label map of each is one square, its side drawn from 28..42."""
    n = 3000
    values = (np.arange(n) % 250 + 1).astype(np.uint8)
    items = np.broadcast_to(values[:, None, None], (n, 28, 28)).copy()
    canvases, masks = clutter_canvases(items, np.arange(n) % 10, fragments=0)
    on_item = masks != BACKGROUND
    sides = on_item.any(2).sum(1)
    assert np.array_equal(on_item.any(1).sum(1), sides) and np.array_equal(on_item.sum((1, 2)), sides**2)
    assert set(sides.tolist()) == set(range(28, 43))
    assert np.array_equal(canvases[on_item], np.repeat(values, sides**2))  # a flat item stays flat
    top, left = on_item.any(2).argmax(1), on_item.any(1).argmax(1)
    assert (top + sides).max() == CANVAS and (left + sides).max() == CANVAS and top.min() == left.min() == 0


def test_upscale_is_bilinear_with_half_pixel_centres_and_exact_at_scale_1():
    items = np.random.default_rng(0).integers(0, 256, (6, 28, 28)).astype(np.uint8)
    assert np.array_equal(upscale(items, 28), items)
    for side in (29, 35, 42):
        reference = F.interpolate(torch.from_numpy(items).float()[:, None], size=side, mode="bilinear")[:, 0]
        assert (torch.from_numpy(upscale(items, side)).float() - reference).abs().max() <= 0.5 + 1e-3


@needs_fmnist
def test_most_of_the_canvas_is_background_with_clutter_on_it(test_canvases):
    on_item = test_canvases.masks != BACKGROUND
    clutter = (test_canvases.images[:, 0] > 0) & ~on_item
    assert 0.70 < (~on_item).float().mean() < 0.90  # measured 0.777
    assert 0.03 < clutter.float().mean() < 0.10  # measured 0.046 with 4 fragments
    patches_on_item = on_item.view(-1, 14, 4, 14, 4).any(4).any(2).float().mean()
    assert patches_on_item < 0.35  # most of the 196 tokens hold no pixel of the item (measured 0.295)


def test_fragments_come_from_other_items_only():
    """Items of one flat value each: outside an item, its canvas never shows its own value."""
    n = 40
    values = np.arange(1, n + 1, dtype=np.uint8)
    items = np.broadcast_to(values[:, None, None], (n, 28, 28)).copy()
    canvases, masks = clutter_canvases(items, np.arange(n) % 10, fragments=8, scale=1)
    off_item = masks == BACKGROUND
    assert ((canvases == values[:, None, None]) & off_item).sum() == 0
    assert (canvases[off_item] > 0).sum() >= n * FRAGMENT * FRAGMENT  # at least one fragment's worth each
    assert np.array_equal((~off_item).sum((1, 2)), np.full(n, 28 * 28))


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_train_canvases_use_training_items_only(tmp_path, monkeypatch):
    """Training items have values 1-100, test items 200-255: no canvas mixes them (at scale 1, where
    interpolation makes no new values)."""
    rng = np.random.default_rng(0)
    for split, low, high in (("train", 1, 100), ("t10k", 200, 255)):
        images = rng.integers(low, high + 1, (30, 28, 28)) * (rng.random((30, 28, 28)) < 0.6)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(30) % 10)
    monkeypatch.setenv("VITPRUNE_FMNIST", str(tmp_path))
    train = fashion_mnist_clutter("train", canvas_model(), scale=1).images
    test = fashion_mnist_clutter("test", canvas_model(), scale=1).images
    assert train.max() <= 100 and ((test == 0) | (test >= 200)).all()
    assert not torch.equal(train > 0, test > 0)  # the two splits draw their own positions


def test_bad_input_is_refused_by_name():
    items = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="fragments must be >= 0, got -1"):
        clutter_canvases(items, np.zeros(4), fragments=-1)
    with pytest.raises(ValueError, match=r"scale must be in \[1, 2\] \(the item must fit\), got 2.5"):
        clutter_canvases(items, np.zeros(4), scale=2.5)
    with pytest.raises(ValueError, match="2 items or more"):
        clutter_canvases(items[:1], np.zeros(1))
    with pytest.raises(ValueError, match="unknown Fashion-MNIST split 'val'"):
        fashion_mnist_clutter("val", canvas_model())
