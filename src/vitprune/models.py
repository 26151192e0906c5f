"""Build timm models, optionally with weights from a local checkpoint.

Name resolution happens in one place, :func:`load_model`: a name found in
:mod:`vitprune.zoo` (models vitprune trained and ships) is resolved first; anything else is
handed to ``timm.create_model``.
"""

from __future__ import annotations

import os

import timm
import torch
from timm.models import parse_model_name
from torch import nn

from vitprune import zoo
from vitprune.checkpoint import CheckpointError, load_state_dict

SHOWN_KEYS = 5


def load_model(
    name: str,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    **kwargs,
) -> nn.Module:
    """Create model ``name`` in eval mode, with weights from ``checkpoint`` when given.

    Extra ``kwargs`` go to ``timm.create_model`` (e.g. ``img_size``, ``in_chans``).
    ``num_classes`` resizes the classifier head. The checkpoint must match the
    model exactly (``strict=True``); otherwise a :class:`CheckpointError` lists the
    missing, unexpected and shape-mismatched keys.
    """
    entry = zoo.entry(name)
    method = None
    if entry is not None:
        method = entry["method"]
        name = entry["model"]
        kwargs = {**entry.get("kwargs", {}), **kwargs}
        checkpoint = checkpoint if checkpoint is not None else entry.get("checkpoint")
        pretrained = False
    source, _ = parse_model_name(name)
    if source is None and not timm.is_model(name):
        family = name.split(".")[0].split("_")[0]
        raise ValueError(
            f"unknown model {name!r}: not a vitprune zoo name nor a timm model. "
            f"List candidates with timm.list_models('*{family}*')."
        )
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = timm.create_model(name, pretrained=pretrained, **kwargs)
    if checkpoint is not None:
        load_weights(model, load_state_dict(checkpoint), source=str(checkpoint))
    if method:  # a zoo model trained with a token method comes with it applied
        from vitprune.api import apply

        apply(model, method, **entry["method_config"])
    return model.eval()


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state, strict=True)``, failing with a readable :class:`CheckpointError`."""
    problems = describe_mismatch(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def describe_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between two state dicts: missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f"{k} {tuple(given[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:SHOWN_KEYS])}{more}")
    return problems
