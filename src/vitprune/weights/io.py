"""Save and load pruned models as plain files: safetensors weights and masks, JSON metadata.

Output of DIMAP (He et al., ICLR 2024) weight pruning, ``save_pruned``::

    model.safetensors   dense state_dict with zeros; loads into the stock timm model (strict)
    masks.safetensors   bool keep-masks keyed by weight name
    report.json         per-layer / per-module sparsity and theoretical MACs
    meta.json           timm name and kwargs, method, target, scope, date

Output of the structured variant, ``save_shrunk``: ``model.safetensors`` (the smaller
state_dict), ``structure.json`` (kept heads / hidden units per block), ``report.json`` and
``meta.json``; :func:`vitprune.models.saved.load_shrunk` rebuilds it from those alone, and every
``--model``/``--checkpoint`` option loads it. Nothing is ever unpickled.

A directory is written whole or not at all: files go into a hidden temporary directory beside
``out_dir``, which is renamed into place at the end and removed on any failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from vitprune.files.atomic import UMASK, json_bytes, sync_dir, write_bytes
from vitprune.files.state_dict import CheckpointError, load_state_dict, save_state_dict
from vitprune.models.build import load_weights
from vitprune.models.saved import (
    MASKS_FILE,
    META_FILE,
    MODEL_FILE,
    REPORT_FILE,
    STRUCTURE_FILE,
    stock_model,
)


def make_meta(model: str, kwargs: dict, **fields) -> dict:
    """``meta.json`` content: the timm ``model`` name and ``kwargs`` that rebuild the architecture,
    any other ``fields`` (method, target, scope, ...) and today's UTC date."""
    return {"model": model, "kwargs": kwargs, **fields, "date": datetime.now(timezone.utc).isoformat()}


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path; ``ValueError`` if it exists and is not an empty directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"output directory {out_dir} already exists and is not empty; choose a new one")
    return out_dir


@contextlib.contextmanager
def _staged(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out_dir`` on success and vanishes on failure."""
    out_dir = check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        yield tmp
        tmp.chmod(0o777 & ~UMASK)  # mkdtemp creates 0700
        os.replace(tmp, out_dir)  # replaces an empty directory; fails on a non-empty one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sync_dir(out_dir.parent)


def _check_meta(meta: dict) -> None:
    if not isinstance(meta.get("model"), str) or not isinstance(meta.get("kwargs"), dict):
        raise ValueError(
            "meta needs 'model' (timm name) and 'kwargs' (dict) to rebuild the model; use make_meta"
        )


def save_pruned(model: nn.Module, masks: dict[str, Tensor], out_dir, report: dict, meta: dict) -> Path:
    """Write a weight-pruned model (masks applied) to a new directory ``out_dir``; returns it."""
    _check_meta(meta)
    with _staged(out_dir) as tmp:
        save_state_dict(model.state_dict(), tmp / MODEL_FILE, metadata={"format": "pt"})
        save_state_dict(masks, tmp / MASKS_FILE, metadata={"format": "vitprune-masks"})
        write_bytes(tmp / REPORT_FILE, json_bytes(report))
        write_bytes(tmp / META_FILE, json_bytes(meta))
    return Path(out_dir)


def save_shrunk(model: nn.Module, structure: dict, out_dir, report: dict, meta: dict) -> Path:
    """Write a physically shrunk model and its ``structure.json`` to a new directory ``out_dir``."""
    _check_meta(meta)
    with _staged(out_dir) as tmp:
        save_state_dict(model.state_dict(), tmp / MODEL_FILE, metadata={"format": "pt"})
        write_bytes(tmp / STRUCTURE_FILE, json_bytes(structure))
        write_bytes(tmp / REPORT_FILE, json_bytes(report))
        write_bytes(tmp / META_FILE, json_bytes(meta))
    return Path(out_dir)


def load_masks(path: str | os.PathLike) -> dict[str, Tensor]:
    """Bool masks from ``masks.safetensors`` (or a directory holding it); ``CheckpointError`` if corrupt."""
    path = Path(path)
    if path.is_dir():
        path = path / MASKS_FILE
    if path.suffix != ".safetensors":
        raise CheckpointError(f"masks must be a .safetensors file (never unpickled), got {path}")
    masks = load_state_dict(path)
    wrong = [name for name, mask in masks.items() if mask.dtype != torch.bool]
    if wrong or not masks:
        raise CheckpointError(
            f"{path} is not a mask file: {'no tensors' if not masks else f'non-bool {wrong[:5]}'}"
        )
    return masks


def load_pruned(directory: str | os.PathLike) -> nn.Module:
    """The weight-pruned model saved by :func:`save_pruned`, in eval mode (stock timm, strict load)."""
    directory = Path(directory)
    model = stock_model(directory)
    load_weights(model, load_state_dict(directory / MODEL_FILE), source=str(directory / MODEL_FILE))
    return model.eval()
