"""Datasets and loaders: Fashion-MNIST from local idx files, or any ImageNet-style folder."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vitprune.data.fashion_mnist import FashionMNIST, has_split
from vitprune.data.imagefolder import image_folder
from vitprune.data.transforms import data_config, model_transform

FASHION_MNIST_NAMES = ("fashion-mnist", "fmnist")

__all__ = ["FashionMNIST", "build_dataset", "build_loader", "data_config", "image_folder", "model_transform"]


def build_dataset(data: str, split: str, model: nn.Module) -> Dataset:
    """Dataset named by ``data``, preprocessed for ``model``.

    ``"fashion-mnist"`` (or ``"fmnist"``) gives the installed Fashion-MNIST ``split``
    (``"train"`` or ``"test"``), as does a directory holding that split's idx files.
    Any other directory is read in ImageFolder layout: ``data/split`` if it exists,
    otherwise ``data`` itself.
    """
    if data.lower() in FASHION_MNIST_NAMES:
        return FashionMNIST(split=split, transform=model_transform(model))
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset directory not found: {root} (expected 'fashion-mnist' or an ImageFolder directory)"
        )
    if has_split(root, split):
        return FashionMNIST(root, split=split, transform=model_transform(model))
    if (root / split).is_dir():
        root = root / split
    return image_folder(root, model)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    workers: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A plain ``DataLoader``; ``shuffle`` is ignored when a ``sampler`` is given."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
