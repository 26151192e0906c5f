"""Reference models vitprune trains itself and ships inside the package (no download needed).

Each entry is ``<name>.safetensors`` (weights) plus ``<name>.json`` (its model card: the timm
architecture and arguments, the exact training command, epochs, wall time, test top-1/top-5, MACs
and parameters). Any ``--model`` option and :func:`vitprune.models.load.load_model` accept these names;
a model's STAR calibration ships as ``calibration/<name>-star``, and :func:`resolve` turns
``prior=<name>`` into it where a method's options come in (command line, sweeps, training runs).
A card may also name a token method (``"method"``, ``"method_config"``): the model was trained with
it (e.g. ``fmnist-vit-sait``), and loading applies it, so ``model.sait.set(...)`` works at once.

    model = vitprune.zoo.load("fmnist-vit")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from vitprune.api import apply
from vitprune.models.build import build

ZOO_DIR = Path(__file__).parent


def names() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.json") if (ZOO_DIR / f"{p.stem}.safetensors").exists())


def card(name: str) -> dict:
    """The model card of ``name``; ``KeyError`` naming the shipped models otherwise."""
    path = ZOO_DIR / f"{name}.json"
    if name not in names():
        raise KeyError(f"no zoo model {name!r}; shipped: {names()}")
    return json.loads(path.read_text())


def method_defaults(name: str, method: str) -> dict:
    """The settings zoo model ``name`` was trained with if its method is ``method``, else ``{}``:
    applying that method again (``--method sait -p mode=mass``) keeps them, e.g. the pruning point of
    ``fmnist-vit-sait``."""
    info = card(name) if name in names() else {}
    return dict(info.get("method_config", {})) if info.get("method") == method else {}


def architecture(name: str, kwargs: dict) -> tuple[str, dict]:
    """The timm name and ``timm.create_model`` arguments behind ``name``, with ``kwargs`` on top: a
    zoo name resolves to its card's architecture, any other name is returned as it is."""
    if name not in names():
        return name, dict(kwargs)
    info = card(name)
    return info["model"], {**info["kwargs"], **kwargs}


def load(name: str, checkpoint: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """The shipped model ``name`` in eval mode: its trained weights (or ``checkpoint``'s), with its token
    method applied when it was trained with one; ``kwargs`` override its ``timm.create_model`` arguments."""
    info = card(name)
    weights = ZOO_DIR / f"{name}.safetensors" if checkpoint is None else checkpoint
    model = build(info["model"], checkpoint=weights, **{**info["kwargs"], **kwargs})
    if info.get("method"):
        apply(model, info["method"], **resolve(info.get("method_config", {})))
    return model.eval()


def calibration(name: str) -> Path | None:
    """The STAR calibration shipped beside zoo model ``name``, if there is one."""
    path = ZOO_DIR / "calibration" / f"{name}-star.safetensors"
    return path if path.exists() else None


def resolve(config: dict) -> dict:
    """A method's ``config`` with zoo names turned into the files they stand for: ``prior=<zoo model>``
    (STAR) becomes the calibration shipped beside that model, unless a calibration file has that name."""
    prior = config.get("prior")
    shipped = calibration(prior) if isinstance(prior, str) else None
    if shipped is None or Path(prior).with_suffix(".safetensors").exists():
        return config
    return {**config, "prior": shipped}
