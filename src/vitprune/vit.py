"""What vitprune needs to know about a timm VisionTransformer: is it supported, and its shape.

Token methods wrap timm's own modules, so they accept exactly the classes whose forward they know:
timm's ``Block`` with timm's ``Attention``, inside a ``VisionTransformer`` (or a subclass such as
DeiT's distilled model). Everything else is refused with an error naming what is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from vitprune.tokens.patch import ReducingBlock

SUPPORTED_FAMILIES = (
    "timm VisionTransformer family: vit_*, deit_* (incl. *_distilled), deit3_* (LayerScale), "
    "models with reg_tokens, qk_norm=True, and class_token=False with global_pool='avg'"
)
SUPPORTED_POOLS = ("token", "avg", "max", "")


class UnsupportedModelError(TypeError):
    """The model is not one a token method can patch."""


def check_supported(model: nn.Module) -> None:
    """Raise ``UnsupportedModelError`` unless token methods can patch ``model`` faithfully."""
    name = type(model).__name__
    if not isinstance(model, VisionTransformer):
        raise UnsupportedModelError(
            f"{name} is not supported by token methods; supported: {SUPPORTED_FAMILIES}"
        )
    for i, blk in enumerate(model.blocks):
        if type(blk) not in (Block, ReducingBlock) or type(blk.attn) is not Attention:
            raise UnsupportedModelError(
                f"block {i} is {type(blk).__name__} with {type(getattr(blk, 'attn', None)).__name__}; "
                f"token methods need timm's Block and Attention. Supported: {SUPPORTED_FAMILIES}"
            )
    if getattr(model, "attn_pool", None) is not None or model.global_pool not in SUPPORTED_POOLS:
        raise UnsupportedModelError(
            f"global_pool={model.global_pool!r} is not supported; allowed: {SUPPORTED_POOLS}"
        )


def _linear_macs(module: nn.Module) -> int:
    """MACs per token of every Linear inside ``module`` (in_features × out_features each)."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


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
    head_macs: int  # classifier head(s), one image
    blocks: tuple[BlockSpec, ...]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix + self.num_patches


def grid_size(model: VisionTransformer, img_size: tuple[int, int]) -> tuple[int, int]:
    ph, pw = model.patch_embed.patch_size
    return img_size[0] // ph, img_size[1] // pw


def default_img_size(model: VisionTransformer) -> tuple[int, int]:
    return tuple(model.patch_embed.img_size)


def describe(model: VisionTransformer, img_size: tuple[int, int] | int | None = None) -> VitSpec:
    """The model's token counts and per-token costs at ``img_size`` (default: its configured size)."""
    if img_size is None:
        img_size = default_img_size(model)
    elif isinstance(img_size, int):
        img_size = (img_size, img_size)
    gh, gw = grid_size(model, img_size)
    proj = model.patch_embed.proj
    embed = gh * gw * proj.in_channels * proj.out_channels * proj.kernel_size[0] * proj.kernel_size[1]
    heads = [m for m in (model.head, getattr(model, "head_dist", None)) if isinstance(m, nn.Linear)]
    blocks = tuple(
        BlockSpec(
            attn_linear=_linear_macs(b.attn),
            attn_dim=b.attn.num_heads * b.attn.head_dim,
            mlp_linear=_linear_macs(b.mlp),
        )
        for b in model.blocks
    )
    return VitSpec(
        depth=len(model.blocks),
        has_class_token=model.cls_token is not None,
        num_prefix=model.num_prefix_tokens,
        num_patches=gh * gw,
        embed_dim=model.embed_dim,
        embed_macs=embed,
        head_macs=sum(h.in_features * h.out_features for h in heads),
        blocks=blocks,
    )
