"""DIMAP's modules: the Linear layers of one role gathered across all blocks of all stages.

He et al., "Data-independent Module-aware Pruning for Hierarchical Vision Transformers"
(DIMAP, ICLR 2024), §3.1: QKV-M holds every ``attn.qkv``, PRJ-M every ``attn.proj`` and MLP-M
every ``mlp.fc1`` and ``mlp.fc2``, over the whole network (not per stage, not per block).
Everything else (norms, patch embedding, patch merging, head, biases, relative-position tables)
is auxiliary and never pruned. The same names cover timm Swin (``layers.{i}.blocks.{j}...``) and
ViT/DeiT (``blocks.{j}...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

# module name → the layer-name suffixes it gathers
MODULE_PATTERNS = {
    "qkv": (r"attn\.qkv",),
    "proj": (r"attn\.proj",),
    "mlp": (r"mlp\.fc1", r"mlp\.fc2"),
}
MODULES = tuple(MODULE_PATTERNS)


@dataclass(frozen=True)
class Layer:
    """One prunable Linear: its dotted name, the DIMAP module it belongs to, and the layer itself."""

    name: str
    module: str
    linear: nn.Linear

    @property
    def param(self) -> str:
        """The state_dict key of the layer's weight (masks are keyed by it)."""
        return f"{self.name}.weight"


def check_modules(modules: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """``modules`` as a tuple of known module names; ``ValueError`` naming the allowed ones."""
    if isinstance(modules, str):
        modules = tuple(m.strip() for m in modules.split(",") if m.strip())
    modules = tuple(modules)
    unknown = [m for m in modules if m not in MODULE_PATTERNS]
    if unknown or not modules:
        raise ValueError(f"unknown module(s) {unknown or modules!r}; allowed: {', '.join(MODULES)}")
    return modules


def gather(model: nn.Module, modules=MODULES) -> dict[str, list[Layer]]:
    """``{module: [Layer, ...]}`` in model order, for the requested modules.

    Raises ``ValueError`` for an unknown module name, or when the model has no prunable layer.
    """
    modules = check_modules(modules)
    found: dict[str, list[Layer]] = {m: [] for m in modules}
    matchers = {m: re.compile(r"(^|\.)(" + "|".join(MODULE_PATTERNS[m]) + r")$") for m in modules}
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear):
            continue
        for module, matcher in matchers.items():
            if matcher.search(name):
                found[module].append(Layer(name, module, layer))
    if not any(found.values()):
        raise ValueError(
            f"{type(model).__name__} has no prunable layers for modules {modules}: "
            "expected Linear layers named *.attn.qkv, *.attn.proj, *.mlp.fc1 or *.mlp.fc2"
        )
    return {m: layers for m, layers in found.items() if layers}


def layers(model: nn.Module, modules=MODULES) -> list[Layer]:
    """All prunable layers of ``model`` for ``modules``, flattened in module order."""
    return [layer for group in gather(model, modules).values() for layer in group]
