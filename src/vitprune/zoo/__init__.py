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

import os

from torch import nn

from vitprune.api import apply
from vitprune.models.build import build
from vitprune.zoo import catalog
from vitprune.zoo.catalog import ZOO_DIR, architecture, calibration, card, method_defaults, names, resolve

__all__ = [
    "ZOO_DIR", "architecture", "calibration", "card", "catalog", "load", "method_defaults", "names", "resolve"
]


def load(name: str, checkpoint: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """The shipped model ``name`` in eval mode: its trained weights (or ``checkpoint``'s), with its token
    method applied when it was trained with one; ``kwargs`` override its ``timm.create_model`` arguments."""
    info = card(name)
    weights = catalog.ZOO_DIR / f"{name}.safetensors" if checkpoint is None else checkpoint
    model = build(info["model"], checkpoint=weights, **{**info["kwargs"], **kwargs})
    if info.get("method"):
        apply(model, info["method"], **resolve(info.get("method_config", {})))
    return model.eval()
