"""Turn raw uint8 images into the normalised float input a timm model expects."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from torch import nn


def data_config(model: nn.Module) -> dict:
    """timm's data config for ``model``, with ``input_size`` taken from the model actually built.

    ``resolve_data_config`` reads the *pretrained* config, so a model created with
    overrides such as ``img_size=32`` or ``in_chans=1`` would still report
    ``(3, 224, 224)``. When the model has a patch embedding we trust its image size
    and input channels instead.
    """
    cfg = resolve_data_config({}, model=model)
    channels, height, width = cfg["input_size"]
    patch_embed = getattr(model, "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    if img_size is not None:
        height, width = img_size
    in_channels = getattr(getattr(patch_embed, "proj", None), "in_channels", None)
    if in_channels is not None:
        channels = in_channels
    cfg["input_size"] = (int(channels), int(height), int(width))
    return cfg


def model_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Build a callable mapping a uint8 ``[C, H, W]`` image to ``model``'s float input.

    Steps: scale to [0, 1], resize to the model's input size (bilinear, antialiased),
    repeat a single channel to three when the model takes RGB, then normalise with
    the config's mean/std. A one-channel model uses the first channel's statistics.
    """
    cfg = data_config(model)
    channels, height, width = cfg["input_size"]
    mean = torch.tensor(cfg["mean"][:channels], dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(cfg["std"][:channels], dtype=torch.float32).view(-1, 1, 1)

    def transform(image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3:
            raise ValueError(f"expected a [C, H, W] image, got shape {tuple(image.shape)}")
        x = image.to(torch.float32) / 255.0
        if x.shape[-2:] != (height, width):
            x = F.interpolate(x[None], size=(height, width), mode="bilinear", antialias=True)[0]
        if x.shape[0] == 1 and channels == 3:
            x = x.expand(3, -1, -1)
        if x.shape[0] != channels:
            raise ValueError(f"image has {x.shape[0]} channels, model expects {channels}")
        return (x - mean) / std

    return transform
