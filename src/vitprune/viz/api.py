"""Token maps in one call: record a forward pass of a traced model and draw it."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from vitprune.data.transforms import data_config
from vitprune.viz.record import TokenMaps, record_token_maps
from vitprune.viz.render import render_token_maps


def denormalise(inputs: Tensor, model: nn.Module) -> Tensor:
    """Model inputs back to images in 0..1 (undoing the model's mean/std normalisation)."""
    cfg = data_config(model)
    channels = inputs.shape[1]
    mean = torch.tensor(cfg["mean"][:channels], dtype=inputs.dtype).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"][:channels], dtype=inputs.dtype).view(1, -1, 1, 1)
    return (inputs.cpu() * std + mean).clamp(0, 1)


def save_token_maps(
    model: nn.Module,
    inputs: Tensor,
    out: str | os.PathLike,
    names: list[str] | None = None,
    title: str | None = None,
) -> tuple[Path, TokenMaps]:
    """Run ``model`` (applied with ``trace_source=True``) on ``inputs`` and write the token-map PNG."""
    maps = record_token_maps(model, inputs)
    path = render_token_maps(maps, denormalise(inputs, model).numpy(), out, names, title)
    return path, maps
