"""Describe how a model was built, store that in checkpoints, and rebuild trained models from them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import nn

import vitprune.train.checkpoint as checkpoint
import vitprune.zoo as zoo
from vitprune.api import apply
from vitprune.files.state_dict import CheckpointError
from vitprune.models.build import load_weights
from vitprune.models.load import load_model
from vitprune.models.resize import apply_structure
from vitprune.train.serialize import decode, encode


def model_spec(
    name: str,
    kwargs: dict | None = None,
    method: str | None = None,
    method_config: dict | None = None,
    structure: dict | None = None,
) -> dict:
    """What :func:`load_trained` needs to rebuild a model: the timm (or zoo) ``name``, the
    ``timm.create_model`` keyword arguments (including ``num_classes``), and the token
    method applied with its configuration. Values must be literals (numbers, strings,
    tuples, lists, dicts). ``structure`` (kept heads / hidden units per block) rebuilds a structured
    DIMAP model."""
    return {
        "name": name,
        "kwargs": dict(kwargs or {}),
        "method": method,
        "method_config": dict(method_config or {}),
        "structure": structure,
    }


def spec_to_json(spec: dict | None) -> object:
    """``spec`` in its JSON form (tuples tagged), or ``ValueError`` if it holds non-literal values."""
    if spec is None:
        return None
    try:
        return encode(spec)
    except TypeError as err:
        raise ValueError(f"model_spec must hold only literal values: {err}") from err


@dataclass
class TrainedRun:
    """A training checkpoint read back: the rebuilt model, the spec it was built from, its epochs and
    per-epoch history."""

    model: nn.Module
    spec: dict
    epochs: int
    history: list[dict]


def load_run(path: str | os.PathLike) -> TrainedRun:
    """Rebuild the model of a training checkpoint (or a run's output directory) in eval mode, with
    what the checkpoint says about it.

    Creates the architecture from the stored spec, loads the weights, then re-applies
    the token method. Raises :class:`~vitprune.files.state_dict.CheckpointError` when the
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
    if spec.get("structure"):
        apply_structure(model, spec["structure"])
    load_weights(model, ck.model, source=str(ck.path / checkpoint.MODEL_FILE))
    if spec["method"]:
        apply(model, spec["method"], **zoo.resolve(spec["method_config"]))
    return TrainedRun(model.eval(), spec, ck.state["epoch"], ck.state["history"])


def load_trained(path: str | os.PathLike) -> nn.Module:
    """The model of a training checkpoint (or a run's output directory), in eval mode (:func:`load_run`)."""
    return load_run(path).model
