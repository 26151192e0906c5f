"""Model families the token core can patch, each through one small adapter."""

from __future__ import annotations

from torch import nn

from vitprune.tokens.families.base import Family, UnsupportedModelError
from vitprune.tokens.families.eva import TimmEva
from vitprune.tokens.families.hf import HfDeit, HfDinov2Registers, HfVit
from vitprune.tokens.families.hf_clip import HfClip, HfSiglip
from vitprune.tokens.families.timm_vit import TimmVit

FAMILIES: tuple[Family, ...] = (
    TimmVit(),
    TimmEva(),
    HfVit(),
    HfDeit(),
    HfDinov2Registers(),
    HfClip(),
    HfSiglip(),
)


def family_of(model: nn.Module) -> Family:
    """The adapter for ``model``, after checking it can be patched faithfully."""
    for family in FAMILIES:
        if family.claims(model):
            family.check(model)
            return family
    supported = "; ".join(f.supported for f in FAMILIES)
    raise UnsupportedModelError(
        f"{type(model).__name__} is not supported by token methods; supported: {supported}"
    )


__all__ = ["FAMILIES", "Family", "UnsupportedModelError", "family_of"]
