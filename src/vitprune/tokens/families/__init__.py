"""Model families the token core can patch, each through one small adapter."""

from __future__ import annotations

from torch import nn

from vitprune.tokens.families.base import Family, UnsupportedModelError, original_class
from vitprune.tokens.families.beit import TimmBeit
from vitprune.tokens.families.eva import TimmEva
from vitprune.tokens.families.hf import HfDeit, HfDinov2Registers, HfVit
from vitprune.tokens.families.hf_clip import HfClip, HfSiglip
from vitprune.tokens.families.timm_vit import TimmVit

FAMILIES: tuple[Family, ...] = (
    TimmVit(),
    TimmEva(),
    TimmBeit(),
    HfVit(),
    HfDeit(),
    HfDinov2Registers(),
    HfClip(),
    HfSiglip(),
)


# Families looked at and refused, with the reason: patching them would give wrong outputs.
REFUSED = {
    "NaFlexVit": (
        "timm NaFlexVit is not supported yet: it applies its patch-validity mask again at pooling by "
        "position in the padded sequence, and builds position embeddings/RoPE per image for the full "
        "patch grid; after tokens are dropped or merged both would point at the wrong tokens"
    ),
}


def family_of(model: nn.Module) -> Family:
    """The adapter for ``model``, after checking it can be patched faithfully."""
    for family in FAMILIES:
        if family.claims(model):
            family.check(model)
            return family
    name = original_class(model).__name__
    if name in REFUSED:
        raise UnsupportedModelError(REFUSED[name])
    supported = "; ".join(f.supported for f in FAMILIES)
    raise UnsupportedModelError(
        f"{type(model).__name__} is not supported by token methods; supported: {supported}"
    )


__all__ = ["FAMILIES", "Family", "UnsupportedModelError", "family_of"]
