"""What vitprune needs to know about a model: is it supported, and its shape.

Token methods wrap the library's own modules, so they accept exactly the families an adapter in
``tokens/families`` knows (and, within a family, the block classes whose forward it knows).
Everything else is refused with an error naming what is supported and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from vitprune.tokens.families import family_of
from vitprune.tokens.families.base import UnsupportedModelError, linear_macs

__all__ = ["BlockSpec", "UnsupportedModelError", "VitSpec", "check_supported", "describe"]


def check_supported(model: nn.Module) -> None:
    """Raise ``UnsupportedModelError`` unless token methods can patch ``model`` faithfully."""
    family_of(model)


@dataclass(frozen=True)
class BlockSpec:
    attn_linear: int  # MACs per token of qkv, proj (and gate)
    attn_dim: int  # heads × head_dim: one N×N matmul costs N²·attn_dim
    mlp_linear: int  # MACs per token of the MLP


@dataclass(frozen=True)
class VitSpec:
    """Shape of a ViT at one input size, enough to count MACs and plan token schedules."""

    depth: int
    has_class_token: bool
    num_prefix: int
    num_patches: int
    embed_dim: int
    embed_macs: int  # patch embedding, one image
    head_macs: int  # classifier head(s) and an attention pool's per-image part, one image
    blocks: tuple[BlockSpec, ...]
    grid: tuple[int, int]  # patches per column and per row at this input size

    @property
    def num_tokens(self) -> int:
        return self.num_prefix + self.num_patches


def describe(model: nn.Module, img_size: tuple[int, int] | int | None = None) -> VitSpec:
    """The model's token counts and per-token costs at ``img_size`` (default: its configured size)."""
    family = family_of(model)
    if img_size is None:
        img_size = family.default_img_size(model)
    elif isinstance(img_size, int):
        img_size = (img_size, img_size)
    proj = family.patch_embed(model)
    gh, gw = img_size[0] // proj.stride[0], img_size[1] // proj.stride[1]
    embed = gh * gw * proj.in_channels * proj.out_channels * proj.kernel_size[0] * proj.kernel_size[1]
    blocks = tuple(
        BlockSpec(
            attn_linear=linear_macs(family.attention(b).modules()),
            attn_dim=family.attn_dim(b),
            mlp_linear=linear_macs(family.mlp(b).modules()),
        )
        for b in family.blocks(model)
    )
    # An attention pool's cost per token leaving the last block is charged to that block's MLP row,
    # whose count is exactly those tokens (the reduction happens before the MLP).
    last = blocks[-1]
    blocks = (
        *blocks[:-1],
        BlockSpec(last.attn_linear, last.attn_dim, last.mlp_linear + family.pool_macs_per_token(model)),
    )
    return VitSpec(
        depth=len(blocks),
        has_class_token=family.has_class_token(model),
        num_prefix=family.num_prefix(model),
        num_patches=gh * gw,
        embed_dim=proj.out_channels,
        embed_macs=embed,
        head_macs=family.head_macs(model),
        blocks=blocks,
        grid=(gh, gw),
    )
