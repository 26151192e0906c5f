"""ImageNet-style evaluation folders (``path/<class>/<image>``) with timm's eval preprocessing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

from PIL import Image
from timm.data import create_transform
from torch import nn
from torchvision.datasets import ImageFolder

from vitprune.data.transforms import data_config

MODES = {1: "L", 3: "RGB"}


def image_folder(path: str | os.PathLike, model: nn.Module) -> ImageFolder:
    """An ``ImageFolder`` over ``path`` using the resize / center-crop / normalise ``model`` was tuned with.

    Images are converted to the model's own input channels (greyscale for a 1-channel model, RGB for
    3), whatever the files hold. Class indices follow the sorted subdirectory names, which matches the
    usual ImageNet validation layout (``n01440764/`` ... ``n15075141/``).
    """
    cfg = data_config(model)
    channels = cfg["input_size"][0]
    if channels not in MODES:
        raise ValueError(f"image folders feed 1- or 3-channel models; this model takes {channels} channels")
    transform = create_transform(
        input_size=cfg["input_size"],
        interpolation=cfg["interpolation"],
        mean=_per_channel(cfg["mean"], channels),
        std=_per_channel(cfg["std"], channels),
        crop_pct=cfg["crop_pct"],
        crop_mode=cfg.get("crop_mode", "center"),
    )
    return ImageFolder(os.fspath(path), transform=transform, loader=partial(_open, mode=MODES[channels]))


def _open(path: str, mode: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert(mode)


def _per_channel(values: Sequence[float], channels: int) -> tuple[float, ...]:
    """Normalisation constants for ``channels`` channels (their mean when the config has another count)."""
    return tuple(values) if len(values) == channels else (sum(values) / len(values),) * channels
