"""A model by name: a name found in :mod:`vitprune.zoo` (models vitprune trained and ships) is
resolved first; ``hf:PATH`` is a local Hugging Face ``save_pretrained`` directory; anything else
is handed to ``timm.create_model``."""

from __future__ import annotations

import os

from torch import nn

import vitprune.zoo as zoo
from vitprune.models.build import build
from vitprune.models.hf import PREFIX, load_hf
from vitprune.models.saved import load_shrunk, pruned_from, shrunk_directory


def loaded_name(name: str, checkpoint: str | os.PathLike | None = None) -> str:
    """What :func:`load_model` loads for ``name`` and ``checkpoint``, in words for reports: ``name``,
    except for a structured ``vitprune prune`` output, which carries its own model whatever ``name``
    says: ``DIR (pruned from SOURCE)``."""
    directory = shrunk_directory(checkpoint) if checkpoint is not None else None
    if name.startswith(PREFIX) or directory is None:
        return name
    return f"{directory} (pruned from {pruned_from(directory)})"


def load_model(
    name: str,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    **kwargs,
) -> nn.Module:
    """Model ``name`` in eval mode, with weights from ``checkpoint`` when given.

    A zoo name brings its architecture, trained weights (unless ``checkpoint`` replaces them) and
    token method; ``pretrained`` only applies to timm names. Extra ``kwargs`` go to
    ``timm.create_model`` (e.g. ``img_size``, ``in_chans``); ``num_classes`` resizes the classifier
    head. The checkpoint must match the model exactly (see :func:`vitprune.models.build.build`), except a
    structured ``vitprune prune`` output (its directory or its ``model.safetensors``), which is rebuilt
    from its own ``meta.json`` and ``structure.json`` whatever ``name`` says.
    """
    if name.startswith(PREFIX):
        if pretrained or checkpoint is not None or kwargs or num_classes is not None:
            raise ValueError(f"{name} carries its own config and weights: drop --pretrained/--checkpoint/...")
        return load_hf(name[len(PREFIX) :])
    if checkpoint is not None and (directory := shrunk_directory(checkpoint)) is not None:
        model = load_shrunk(directory)
        if pretrained or kwargs or num_classes not in (None, model.num_classes):
            raise ValueError(
                f"{checkpoint} is a structured (neuron-head) model that carries its own architecture "
                f"({directory}/meta.json, structure.json): drop --pretrained/--num-classes/--model-kwargs"
            )
        return model
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if name in zoo.names():
        return zoo.load(name, checkpoint, **kwargs)
    return build(name, pretrained, checkpoint, **kwargs)
