"""Models saved by ``vitprune prune`` as plain files, rebuilt from their own ``meta.json``.

A structured output (``structure.json`` beside ``model.safetensors``) has fewer heads and hidden
units than its timm name says, so it loads from its own files, never from ``--model``'s architecture.
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import timm
from torch import nn

from vitprune.files.state_dict import CheckpointError, load_state_dict
from vitprune.models.build import load_weights
from vitprune.models.resize import apply_structure

MODEL_FILE, MASKS_FILE, REPORT_FILE, META_FILE, STRUCTURE_FILE = (
    "model.safetensors",
    "masks.safetensors",
    "report.json",
    "meta.json",
    "structure.json",
)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from err


def architecture(directory: Path) -> tuple[str, dict, dict | None]:
    """The timm name, ``timm.create_model`` arguments and structure (``None`` when not shrunk) of a saved
    model."""
    meta = read_json(directory / META_FILE)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.get("kwargs", {}).items()}
    shrunk = directory / STRUCTURE_FILE
    return meta["model"], kwargs, read_json(shrunk) if shrunk.is_file() else None


def pruned_from(directory: Path) -> str:
    """The model a ``vitprune prune`` output was pruned from, as it was named (a zoo or timm name, or the
    checkpoint it was loaded from)."""
    meta = read_json(directory / META_FILE)
    return str(meta.get("source") or meta["model"])


def stock_model(directory: Path) -> nn.Module:
    """The stock timm model that ``meta.json`` in ``directory`` describes (random weights)."""
    name, kwargs, _ = architecture(directory)
    return timm.create_model(name, pretrained=False, **kwargs)


def shrunk_directory(checkpoint: str | os.PathLike) -> Path | None:
    """The structured output ``checkpoint`` belongs to (the directory, or its ``model.safetensors``)."""
    path = Path(checkpoint)
    directory = path if path.is_dir() else path.parent
    if (directory / STRUCTURE_FILE).is_file() and (path.is_dir() or path.name == MODEL_FILE):
        return directory
    return None


def load_shrunk(directory: str | os.PathLike) -> nn.Module:
    """The shrunk model saved by ``save_shrunk``: stock timm model, resized blocks, strict load."""
    directory = Path(directory)
    name, kwargs, structure = architecture(directory)
    model = apply_structure(timm.create_model(name, pretrained=False, **kwargs), structure)
    load_weights(model, load_state_dict(directory / MODEL_FILE), source=str(directory / MODEL_FILE))
    return model.eval()
