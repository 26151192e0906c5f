"""Build a timm model by its timm name, with weights from a local checkpoint, loaded strictly."""

from __future__ import annotations

import os

import timm
import torch
from timm.models import parse_model_name
from torch import nn

from vitprune.files.state_dict import CheckpointError, load_state_dict
from vitprune.models.grid import fit_grid

SHOWN_KEYS = 5


def build(
    name: str, pretrained: bool = False, checkpoint: str | os.PathLike | None = None, **kwargs
) -> nn.Module:
    """timm model ``name`` in eval mode, with weights from ``checkpoint`` when given.

    Extra ``kwargs`` go to ``timm.create_model`` (e.g. ``img_size``, ``in_chans``, ``num_classes``).
    The checkpoint must match the model exactly (``strict=True``), except a ViT checkpoint made at
    another patch or image size, resampled as timm does (:mod:`vitprune.models.grid`); otherwise a
    :class:`CheckpointError` lists the missing, unexpected and shape-mismatched keys.
    """
    source, _ = parse_model_name(name)
    if source is None and not timm.is_model(name):
        family = name.split(".")[0].split("_")[0]
        raise ValueError(
            f"unknown model {name!r}: not a vitprune zoo name nor a timm model. "
            f"List candidates with timm.list_models('*{family}*')."
        )
    model = timm.create_model(name, pretrained=pretrained, **kwargs)
    if checkpoint is not None:
        state = fit_grid(model, load_state_dict(checkpoint), source=str(checkpoint))
        load_weights(model, state, source=str(checkpoint))
    return model.eval()


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state, strict=True)``, failing with a readable :class:`CheckpointError`."""
    problems = describe_mismatch(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_backbone(model: nn.Module, checkpoint: str | os.PathLike) -> None:
    """Every weight of ``checkpoint`` but its classifier head's into ``model``, whose own head stays as
    built: a classifier's backbone under a new head (a segmenter's, or another number of classes).
    The rest must match as :func:`load_weights` requires; a grid of another size is resampled."""
    head = next(name for name, module in model.named_modules() if module is model.get_classifier())
    state = fit_grid(model, load_state_dict(checkpoint), source=str(checkpoint))
    state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    body = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{head}.")}
    problems = describe_mismatch(body, state)
    if problems:
        name = type(model).__name__
        raise CheckpointError(f"{checkpoint} is not a backbone of {name}: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


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
