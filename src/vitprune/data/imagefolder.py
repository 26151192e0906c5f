"""ImageNet-style evaluation folders (``path/<class>/<image>``) with timm's eval preprocessing."""

from __future__ import annotations

import os

from timm.data import create_transform
from torch import nn
from torchvision.datasets import ImageFolder

from vitprune.data.transforms import data_config


def image_folder(path: str | os.PathLike, model: nn.Module) -> ImageFolder:
    """An ``ImageFolder`` over ``path`` using the resize / center-crop / normalise ``model`` was tuned with.

    Class indices follow the sorted subdirectory names, which matches the usual
    ImageNet validation layout (``n01440764/`` ... ``n15075141/``).
    """
    cfg = data_config(model)
    transform = create_transform(
        input_size=cfg["input_size"],
        interpolation=cfg["interpolation"],
        mean=cfg["mean"],
        std=cfg["std"],
        crop_pct=cfg["crop_pct"],
        crop_mode=cfg.get("crop_mode", "center"),
    )
    return ImageFolder(os.fspath(path), transform=transform)
