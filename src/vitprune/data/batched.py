"""Fast in-memory image data: whole batches are gathered, augmented and normalised as tensors.

The per-sample transform path in :mod:`vitprune.data` costs more than a tiny model's
forward pass on CPU; here a batch of uint8 images is turned into model input with a
handful of tensor operations instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vitprune.data.fashion_mnist import FashionMNIST
from vitprune.data.transforms import data_config, to_model_input

CROP_PADDING = 2


class TensorImageDataset(Dataset):
    """uint8 images ``[N, C, H, W]`` with int64 labels, prepared for ``model`` a batch at a time.

    Preparation scales to [0, 1], resizes (bilinear, antialiased) only when the
    model's input size differs, repeats one channel to three only when the model
    takes RGB, and normalises with the model's mean/std, as
    :func:`vitprune.data.model_transform` does per image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, model: nn.Module):
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected uint8 images [N, C, H, W] and N labels, got {images.dtype} {tuple(images.shape)} "
                f"and {len(labels)} labels"
            )
        self.images, self.labels = images, labels.long()
        self.cfg = data_config(model)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.prepare(self.images[index : index + 1])[0], int(self.labels[index])

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` → normalised float model input."""
        return to_model_input(images, self.cfg)


def fashion_mnist(split: str, model: nn.Module, root: str | os.PathLike | None = None) -> TensorImageDataset:
    """Fashion-MNIST ``split`` as a :class:`TensorImageDataset` for ``model``."""
    raw = FashionMNIST(root, split=split)
    return TensorImageDataset(raw.images, raw.labels, model)


def crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """Random crop after zero-padding by ``padding`` pixels, and a random horizontal flip, per image."""
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    rows = dy[:, None] + torch.arange(height)
    cols = dx[:, None] + torch.arange(width)
    cols = torch.where(flip[:, None], cols.flip(-1), cols)
    b = torch.arange(batch)[:, None, None, None]
    c = torch.arange(channels)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


class BatchLoader:
    """Iterates ``(inputs, labels)`` batches of a :class:`TensorImageDataset` in ``sampler`` order.

    With ``augment``, each batch gets :func:`crop_flip` from a generator seeded by
    ``(seed, epoch, stream)`` — so an epoch's batches are reproducible after a resume;
    use a different ``stream`` per rank. ``set_epoch`` forwards to the sampler.
    """

    def __init__(
        self,
        dataset: TensorImageDataset,
        batch_size: int,
        sampler: Sampler[int] | None = None,
        augment: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        stream: int = 0,
    ):
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler = sampler if sampler is not None else range(len(dataset))
        self.augment, self.seed, self.stream, self.epoch = augment, seed, stream, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation to produce."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = torch.tensor(list(self.sampler), dtype=torch.long)
        seed = int(np.random.SeedSequence([self.seed, self.epoch, self.stream]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = indices[start : start + self.batch_size]
            images = self.dataset.images[batch]
            if self.augment:
                images = crop_flip(images, generator)
            yield self.dataset.prepare(images), self.dataset.labels[batch]


def build_loader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    *,
    augment: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    stream: int = 0,
    workers: int = 0,
) -> BatchLoader | DataLoader:
    """A :class:`BatchLoader` for a :class:`TensorImageDataset`, else a plain loader over ``dataset``.

    Augmentation is only available on the batched path (``ValueError`` otherwise).
    """
    if isinstance(dataset, TensorImageDataset):
        return BatchLoader(dataset, batch_size, sampler, augment, drop_last, seed, stream)
    if augment:
        raise ValueError(
            "batch augmentation needs a TensorImageDataset (e.g. vitprune.data.batched.fashion_mnist)"
        )
    return DataLoader(
        dataset,
        batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )
