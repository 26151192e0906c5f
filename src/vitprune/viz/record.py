"""Record the token state after every reducing block of one forward pass, as per-layer group maps.

Forward hooks on the model's blocks (found by its family adapter: timm ViT, EVA, BEiT, Hugging Face
ViT/DeiT/DINOv2/CLIP/SigLIP) read ``model.vitprune.state`` once the block has run (a reducing block
replaces the state), so nothing inside the patched model changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import vitprune.tokens.patch as token_patch
from vitprune.viz.groups import fused_patches, patch_groups


@dataclass
class LayerMap:
    """The tokens after one block (``layer`` -1: the input, before any block)."""

    layer: int
    groups: Tensor  # [B, patches] long: token holding each original patch, -1 when dropped
    fused: Tensor  # [B, patches] bool: held by a fused token (EViT's inattentive-token fusion)
    counts: Tensor  # [B] long: patch tokens each image keeps


@dataclass
class TokenMaps:
    """One column per reducing block (plus the input) for a batch of images."""

    method: str
    grid: tuple[int, int]  # patches per column and per row of the image
    layers: list[LayerMap]
    branches: dict[int, Tensor] = field(default_factory=dict)  # PPT: layer → [B] True = pooled
    adaptive: bool = False  # images keep different numbers of tokens

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]


def _input_map(batch: int, patches: int) -> LayerMap:
    groups = torch.arange(patches).expand(batch, patches)
    return LayerMap(-1, groups, torch.zeros(batch, patches, dtype=torch.bool), torch.full((batch,), patches))


@torch.inference_mode()
def record_token_maps(model: nn.Module, images: Tensor) -> TokenMaps:
    """Run ``model`` (patched with ``trace_source=True``) on ``images`` and collect its token maps."""
    if not token_patch.is_patched(model) or not model.vitprune.trace_source:
        raise ValueError("token maps need a model patched with vitprune.apply(..., trace_source=True)")
    ctx = model.vitprune
    stride = ctx.family.patch_embed(model).stride
    grid = (images.shape[-2] // stride[0], images.shape[-1] // stride[1])
    maps = [_input_map(images.shape[0], grid[0] * grid[1])]
    adaptive = False

    def hook(block: nn.Module, _inputs, _output) -> None:
        nonlocal adaptive
        state = ctx.state
        groups = patch_groups(state)
        adaptive = adaptive or state.valid is not None
        counts = state.counts() - state.num_prefix
        maps.append(LayerMap(block._vp_layer, groups, fused_patches(state, groups), counts))

    active = [blk for i, blk in enumerate(ctx.family.blocks(model)) if ctx.method.active(i)]
    handles = [blk.register_forward_hook(hook) for blk in active]
    try:
        model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    branches = {layer: b.clone().cpu() for layer, b in getattr(ctx.method, "branches", {}).items()}
    return TokenMaps(ctx.method.name, grid, maps, branches, adaptive)
