"""What the zoo ships, read from its files alone: model names, cards, shipped STAR calibrations, and
the resolution of ``prior=<zoo model>`` into a calibration file (imports nothing of vitprune, so
``vitprune.apply`` can resolve names without a circle through the models it loads)."""

from __future__ import annotations

import json
from pathlib import Path

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
