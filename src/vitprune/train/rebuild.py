"""Describe how a model was built, store that in checkpoints, and rebuild trained models from them."""

from __future__ import annotations

import os

from torch import nn

from vitprune.api import apply
from vitprune.checkpoint import CheckpointError
from vitprune.models import load_model, load_weights
from vitprune.train import checkpoint
from vitprune.train.serialize import decode, encode


def model_spec(
    name: str,
    kwargs: dict | None = None,
    method: str | None = None,
    method_config: dict | None = None,
) -> dict:
    """What :func:`load_trained` needs to rebuild a model: the timm (or zoo) ``name``, the
    ``timm.create_model`` keyword arguments (including ``num_classes``), and the token
    method applied with its configuration. Values must be literals (numbers, strings,
    tuples, lists, dicts)."""
    return {
        "name": name,
        "kwargs": dict(kwargs or {}),
        "method": method,
        "method_config": dict(method_config or {}),
    }


def spec_to_json(spec: dict | None) -> object:
    """``spec`` in its JSON form (tuples tagged), or ``ValueError`` if it holds non-literal values."""
    if spec is None:
        return None
    try:
        return encode(spec)
    except TypeError as err:
        raise ValueError(f"model_spec must hold only literal values: {err}") from err


def load_trained(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model of a training checkpoint (or a run's output directory) in eval mode.

    Creates the architecture from the stored spec, loads the weights, then re-applies
    the token method. Raises :class:`~vitprune.checkpoint.CheckpointError` when the
    checkpoint is incomplete or was saved without a spec.
    """
    ck = checkpoint.load(path)
    spec = decode(ck.state.get("model"))
    if not spec:
        raise CheckpointError(
            f"{ck.path} was saved without a model spec; rebuild the model yourself and load "
            f"{ck.path / checkpoint.MODEL_FILE}"
        )
    model = load_model(spec["name"], **spec["kwargs"])
    load_weights(model, ck.model, source=str(ck.path / checkpoint.MODEL_FILE))
    if spec["method"]:
        apply(model, spec["method"], **spec["method_config"])
    return model.eval()
