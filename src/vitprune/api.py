"""The two-line entry point: ``vitprune.apply(model, method, **config)`` and ``vitprune.remove(model)``."""

from __future__ import annotations

from torch import nn

import vitprune.tokens.patch as token_patch
from vitprune.methods import REGISTRY
from vitprune.vit import check_supported, describe
from vitprune.weights.apply import NAME as DIMAP
from vitprune.weights.apply import SUMMARY, apply_dimap
from vitprune.zoo.catalog import resolve


def methods() -> dict[str, str]:
    """Available methods, token and weight (``dimap``), name → one-line summary."""
    return dict(
        sorted({**{name: summary for name, (_, summary) in REGISTRY.items()}, DIMAP: SUMMARY}.items())
    )


def apply(
    model: nn.Module, method: str, *, img_size=None, trace_source: bool = False, dense: bool = False, **config
) -> nn.Module:
    """Patch ``model`` in place so ``method`` runs in its forward pass; return the model.

    ``config`` holds the method's own options (see ``vitprune methods``); every method also takes
    ``macs=`` (a fraction of dense MACs, or GMACs as a number > 1 or a string like ``"2.9G"``), solved
    for the model at ``img_size`` (default: the model's own). STAR's ``prior=`` takes a calibration
    file or the name of a zoo model whose calibration ships with vitprune. ``trace_source`` records
    which original patches each token holds (``model.vitprune.state.source``) for visualisation;
    ``model.vitprune.state`` is None after a forward in which no block reduced.
    ``dense`` makes the model's output the full patch grid (``tokens/restore.py``; SViT, arXiv
    2306.07050): each patch gets the feature of the token that holds it (a merged token's goes to
    every patch merged into it), a dropped patch keeps the value it had after the attention of the
    block that dropped it, and ``resize`` interpolates back to the model's grid. timm's
    ``forward_features`` and Hugging Face's ``last_hidden_state`` and ``output_hidden_states`` are
    then full grids, and pooling reads every patch once; timm's ``forward_intermediates`` returns full
    grids with or without ``dense``.
    Applying again replaces the previous method.

    ``"dimap"`` prunes weights in place (see :func:`vitprune.weights.apply.apply_dimap`), keeps any
    token method already applied, and is not undone by :func:`remove`.
    """
    if method == DIMAP:
        return apply_dimap(model, **config)
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; available: {sorted(methods())}")
    check_supported(model)
    builder, _ = REGISTRY[method]
    if getattr(model, "grad_checkpointing", False):  # timm; Hugging Face models: their adapter checks
        raise ValueError(
            "token methods do not support grad checkpointing (recomputation would see later tokens)"
        )
    spec = describe(model, img_size)
    built = builder(spec, **resolve(config))
    built.plan(spec)
    remove(model)
    token_patch.patch(model, built, trace_source=trace_source, dense=dense)
    if hasattr(built, "set"):  # runtime settings, e.g. model.sait.set(mode="mass", mass=0.9)
        setattr(model, built.name, built)
    return model


def remove(model: nn.Module) -> nn.Module:
    """Restore the model's original classes; a never-patched model is returned unchanged."""
    if token_patch.is_patched(model):
        method = model.vitprune.method
        if hasattr(method, "set"):
            delattr(model, method.name)
        token_patch.unpatch(model)
    return model
