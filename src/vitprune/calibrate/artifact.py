"""A STAR calibration on disk: ``<path>.safetensors`` (the prior and ACS tables) plus ``<path>.json``
(what it was computed from: model, data, number of images, prior method, date)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vitprune.files.atomic import json_bytes, write_bytes
from vitprune.files.state_dict import CheckpointError, save_state_dict
from vitprune.vit import VitSpec


@dataclass
class Calibration:
    prior: torch.Tensor  # [L, num_patches], relevance of each patch position per layer
    acs: torch.Tensor  # [L], average cosine similarity of the patch tokens entering each block
    meta: dict = field(default_factory=dict)


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_calibration(calibration: Calibration, path: str | os.PathLike) -> Path:
    """Write both files atomically; returns the safetensors path."""
    tensors, meta = _paths(path)
    save_state_dict({"prior": calibration.prior.float(), "acs": calibration.acs.double()}, tensors)
    write_bytes(meta, json_bytes(calibration.meta))
    return tensors


def read_calibration(path: str | os.PathLike) -> Calibration:
    """The calibration at ``path`` (a zoo model's shipped one: ``vitprune.zoo.calibration(name)``)."""
    tensors, meta = _paths(path)
    if not tensors.exists():
        raise FileNotFoundError(
            f"no calibration at {tensors}; create one with `vitprune calibrate --method star` "
            "(a zoo model's shipped one: vitprune.zoo.calibration(name))"
        )
    try:
        data = load_file(tensors)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{tensors} is not a readable safetensors file: {err}") from err
    if set(data) != {"prior", "acs"}:
        raise CheckpointError(f"{tensors} is not a STAR calibration (tensors {sorted(data)})")
    try:
        info = json.loads(meta.read_text()) if meta.exists() else {}
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{meta} is not a readable calibration description: {err}") from err
    return Calibration(prior=data["prior"], acs=data["acs"], meta=info)


def load_calibration(source: Calibration | str | os.PathLike, spec: VitSpec) -> Calibration:
    """``source`` (a Calibration or a path) checked against the model it will be applied to."""
    calibration = source if isinstance(source, Calibration) else read_calibration(source)
    expected = (spec.depth, spec.num_patches)
    if tuple(calibration.prior.shape) != expected or calibration.acs.shape != (spec.depth,):
        raise ValueError(
            f"star: the calibration has prior {tuple(calibration.prior.shape)} and acs "
            f"{tuple(calibration.acs.shape)}, but this model needs prior {expected} and acs ({spec.depth},) "
            f"(calibrated on {calibration.meta.get('model', 'another model')}?)"
        )
    return calibration
