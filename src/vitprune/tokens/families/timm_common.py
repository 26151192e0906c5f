"""What timm's ViT-like families (VisionTransformer, Eva, Beit) share: blocks in ``model.blocks``, the
prefix count, a conv patch embedding, one classifier head, and each block's ``attn`` and ``mlp``."""

from __future__ import annotations

from timm.layers import Format

from vitprune.tokens.families.base import AnyGrid, Family, UnsupportedModelError, linear_macs


class TimmFamily(Family):
    def blocks(self, model):
        return model.blocks

    def num_prefix(self, model):
        return model.num_prefix_tokens

    def has_class_token(self, model):
        return model.cls_token is not None

    def patch_embed(self, model):
        return model.patch_embed.proj

    def default_img_size(self, model):
        return tuple(model.patch_embed.img_size)

    def head_macs(self, model):
        return linear_macs([model.head])

    def attention(self, blk):
        return blk.attn

    def mlp(self, blk):
        return blk.mlp

    def any_grid(self, model, grid):
        """timm's ``dynamic_img_size``: the patch embedding takes any size and ``_pos_embed`` resamples
        the absolute position embedding (``resample_abs_pos_embed``) and, in Eva, builds RoPE for the grid."""
        embed = model.patch_embed
        if not hasattr(model, "dynamic_img_size") or not hasattr(embed, "strict_img_size"):
            raise UnsupportedModelError(f"{type(model).__name__} has no dynamic_img_size: no resized input")
        if getattr(embed, "dynamic_img_pad", False):
            raise UnsupportedModelError("timm dynamic_img_pad pads the input: its grid is not the one asked")
        return AnyGrid(
            attributes=(
                (model, "dynamic_img_size", True),
                (embed, "strict_img_size", False),
                (embed, "flatten", False),
                (embed, "output_fmt", Format.NHWC),
            )
        )
