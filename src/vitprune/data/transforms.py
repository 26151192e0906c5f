"""Turn raw uint8 images into the normalised float input a timm model expects."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from torch import nn


def data_config(model: nn.Module) -> dict:
    """timm's data config for ``model``, with ``input_size`` taken from the model actually built.

    ``resolve_data_config`` reads the *pretrained* config, so a model created with
    overrides such as ``img_size=32`` or ``in_chans=1`` would still report
    ``(3, 224, 224)``. When the model has a patch embedding we trust its image size
    and input channels instead. A ``torch.compile``d model is read through the module it wraps.
    """
    model = getattr(model, "_orig_mod", model)
    cfg = resolve_data_config({}, model=model)
    channels, height, width = cfg["input_size"]
    patch_embed = getattr(model, "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    hf = getattr(model, "config", None)  # a Hugging Face model's config gives its size and channels
    if img_size is None and isinstance(getattr(hf, "image_size", None), int):
        img_size, channels = (hf.image_size, hf.image_size), getattr(hf, "num_channels", channels)
    if img_size is not None:
        height, width = img_size
    in_channels = getattr(getattr(patch_embed, "proj", None), "in_channels", None)
    if in_channels is not None:
        channels = in_channels
    cfg["input_size"] = (int(channels), int(height), int(width))
    return cfg


def resolve_input_size(model: nn.Module, input_size: Sequence[int] | None = None) -> tuple[int, ...]:
    """``input_size`` as given, else the ``(C, H, W)`` the model was built for."""
    return tuple(input_size) if input_size is not None else data_config(model)["input_size"]


def to_model_input(images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` images → the normalised float input described by ``cfg`` (see
    :func:`data_config`): scale to [0, 1], resize (bilinear, antialiased) only when the size differs,
    repeat one channel to three when the model takes RGB, normalise with the config's mean/std (a
    one-channel model uses the first channel's statistics)."""
    channels, height, width = cfg["input_size"]
    x = images.to(torch.float32) / 255.0
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True)
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != channels:
        raise ValueError(f"images have {x.shape[1]} channels, model expects {channels}")
    mean = torch.tensor(cfg["mean"][:channels], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"][:channels], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def model_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A per-image ``[C, H, W]`` uint8 → float transform for ``model`` (:func:`to_model_input`)."""
    cfg = data_config(model)

    def transform(image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3:
            raise ValueError(f"expected a [C, H, W] image, got shape {tuple(image.shape)}")
        return to_model_input(image[None], cfg)[0]

    return transform
