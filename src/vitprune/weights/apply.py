"""DIMAP through ``vitprune.apply(model, "dimap", ...)``: the weight method behind the one API.

Masks (the paper) zero weights in place and leave a stock timm model; ``structure="neuron-head"``
removes whole heads and MLP units so the model really shrinks. Weight and token methods compose:
masks go before or after a token method; a structured cut goes first, since a token method's
``macs=`` target was solved for the heads the model had when it was applied.
"""

from __future__ import annotations

from torch import nn

import vitprune.tokens.patch as token_patch
from vitprune.weights.dimap import apply_masks, dimap_masks
from vitprune.weights.modules import MODULES
from vitprune.weights.structured import STRUCTURES, shrink

NAME = "dimap"
SUMMARY = (
    "DIMAP weight pruning: data-free, module-aware masks (params_removed=/macs=), or neuron-head structure"
)
OPTIONS = ("params_removed", "macs", "scope", "modules", "structure")


def apply_dimap(model: nn.Module, **config) -> nn.Module:
    """Prune ``model`` in place with DIMAP and return it.

    Options: ``params_removed=`` (fraction of the prunable weights removed) or ``macs=`` (MACs kept: a
    fraction of dense, or ``"2.9G"``; masks only), ``scope=`` (one of ``SCOPES``), ``modules=``
    (``"qkv,proj,mlp"``) and ``structure=`` (``"none"`` or ``"neuron-head"``).
    """
    if "params" in config:  # every other target says what the model keeps
        raise ValueError(
            f"dimap: params={config['params']!r} is ambiguous (macs= says what the model keeps); for the "
            f"share of prunable weights removed write params_removed={config['params']!r}"
        )
    unknown = sorted(set(config) - set(OPTIONS))
    if unknown:
        raise ValueError(f"dimap: unknown option(s) {unknown}; allowed: {sorted(OPTIONS)}")
    config["params"] = config.pop("params_removed", None)
    structure = config.pop("structure", "none")
    scope, modules = config.pop("scope", "module"), config.pop("modules", MODULES)
    if structure == "none":
        apply_masks(model, dimap_masks(model, scope=scope, modules=modules, **config))
        return model
    if structure not in STRUCTURES:
        raise ValueError(f"dimap: structure={structure!r}; allowed: none, {', '.join(STRUCTURES)}")
    if config.get("macs") is not None:
        raise ValueError(
            f"dimap: structure={structure!r} takes params_removed= only, not macs={config['macs']!r}"
        )
    if token_patch.is_patched(model):
        raise ValueError(
            f"dimap: structure={structure!r} changes the heads the {model.vitprune.method.name} method "
            f"was planned for; apply dimap first, then the token method"
        )
    shrink(model, config.get("params"), structure, modules, scope)
    return model
