"""Reference models vitprune trains itself and ships inside the package (no download needed).

Each entry is ``<name>.safetensors`` (weights) plus ``<name>.json`` (its model card: the timm
architecture and arguments, the exact training command, epochs, wall time, test top-1/top-5, MACs
and parameters). Any ``--model`` option and :func:`vitprune.models.load_model` accept these names.
A card may also name a token method (``"method"``, ``"method_config"``): the model was trained with
it (e.g. ``fmnist-vit-sait``), and loading applies it, so ``model.sait.set(...)`` works at once.

    model = vitprune.zoo.load("fmnist-vit")
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

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


def entry(name: str) -> dict | None:
    """How :func:`vitprune.models.load_model` builds ``name``, or ``None`` if it is not a zoo name."""
    if name not in names():
        return None
    info = card(name)
    return {
        "model": info["model"],
        "kwargs": info["kwargs"],
        "checkpoint": ZOO_DIR / f"{name}.safetensors",
        "method": info.get("method"),
        "method_config": info.get("method_config", {}),
    }


def method_defaults(name: str, method: str) -> dict:
    """The settings zoo model ``name`` was trained with if its method is ``method``, else ``{}``:
    applying that method again (``--method sait -p mode=mass``) keeps them, e.g. the pruning point of
    ``fmnist-vit-sait``."""
    base = entry(name)
    return dict(base["method_config"]) if base is not None and base["method"] == method else {}


def architecture(name: str, kwargs: dict) -> tuple[str, dict]:
    """The timm name and ``timm.create_model`` arguments behind ``name``, with ``kwargs`` on top: a
    zoo name resolves to its card's architecture, any other name is returned as it is."""
    base = entry(name)
    if base is None:
        return name, dict(kwargs)
    return base["model"], {**base["kwargs"], **kwargs}


def load(name: str) -> nn.Module:
    """The shipped model ``name`` with its trained weights, in eval mode."""
    from vitprune.models import load_model

    card(name)
    return load_model(name)
