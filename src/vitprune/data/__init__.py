"""Datasets and loaders: Fashion-MNIST from local idx files (plain, or cluttered canvases), or any
ImageNet-style folder."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from vitprune.data.batched import TensorImageDataset, build_loader, fashion_mnist
from vitprune.data.clutter import fashion_mnist_clutter
from vitprune.data.fashion_mnist import FashionMNIST, has_split
from vitprune.data.imagefolder import image_folder
from vitprune.data.transforms import data_config, model_transform

CLUTTER_NAMES = ("fashion-mnist-clutter", "fmnist-clutter")
FASHION_MNIST_NAMES = ("fashion-mnist", "fmnist", *CLUTTER_NAMES)  # every name with Fashion-MNIST's classes

__all__ = [
    "FashionMNIST",
    "TensorImageDataset",
    "build_dataset",
    "build_loader",
    "data_config",
    "fashion_mnist",
    "image_folder",
    "model_transform",
]


def build_dataset(data: str, split: str, model: nn.Module) -> Dataset:
    """Dataset named by ``data``, preprocessed for ``model``.

    ``"fashion-mnist"`` (or ``"fmnist"``) gives the installed Fashion-MNIST ``split``
    (``"train"`` or ``"test"``), as does a directory holding that split's idx files;
    ``"fashion-mnist-clutter"`` (or ``"fmnist-clutter"``) its cluttered 56x56 canvases
    (:mod:`vitprune.data.clutter`).
    Any other directory is read in ImageFolder layout: ``data/split`` if it exists,
    otherwise ``data`` itself.
    """
    if data.lower() in CLUTTER_NAMES:
        return fashion_mnist_clutter(split, model)
    if data.lower() in FASHION_MNIST_NAMES:
        return fashion_mnist(split, model)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset directory not found: {root} "
            "(expected 'fashion-mnist', 'fashion-mnist-clutter' or an ImageFolder directory)"
        )
    if has_split(root, split):
        return fashion_mnist(split, model, root=root)
    if (root / split).is_dir():
        root = root / split
    return image_folder(root, model)
