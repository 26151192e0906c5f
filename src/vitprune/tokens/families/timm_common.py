"""What timm's ViT-like families (VisionTransformer, Eva, Beit) share: blocks in ``model.blocks``, the
prefix count, a conv patch embedding, one classifier head, and each block's ``attn`` and ``mlp``."""

from __future__ import annotations

from vitprune.tokens.families.base import Family, linear_macs


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
