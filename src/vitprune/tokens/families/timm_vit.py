"""timm's VisionTransformer (vit_*, deit_*, deit3_*, register and qk-norm variants).

Blocks are timm's ``Block`` with timm's ``Attention`` (fused ``qkv``, optional q/k norms); the
halves call ``norm1, attn(attn_mask=), ls1, drop_path1`` and ``norm2, mlp, ls2, drop_path2`` as
``Block.forward`` does. Average pooling is weighted by token size and max pooling skips padding;
SigLIP's attention pool (``global_pool='map'``) gets log(size) and padding as its mask.
"""

from __future__ import annotations

from timm.layers import Attention, AttentionPoolLatent
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor

from vitprune.tokens.attention import AttentionView
from vitprune.tokens.families.base import (
    UnsupportedModelError,
    linear_macs,
    original_class,
    pool_bias,
    pooled_state,
)
from vitprune.tokens.families.timm_common import TimmFamily, restored_intermediates

POOLS = ("token", "avg", "max", "")


def _size_weighted_pool(self, x: Tensor, pool_type: str | None = None) -> Tensor:
    """``VisionTransformer.pool`` with average pooling weighted by token size, padding left out."""
    pool_type = self.global_pool if pool_type is None else pool_type
    state = pooled_state(self)
    if pool_type == "max" and state is not None and state.valid is not None:
        x = x.masked_fill(~state.valid[..., None], float("-inf"))  # padding must not win the max
    if pool_type != "avg" or state is None or (state.size is None and state.valid is None):
        return super(type(self), self).pool(x, pool_type)
    start = 0 if getattr(self, "pool_include_prefix", False) else self.num_prefix_tokens
    w = state.sizes(x)
    if state.valid is not None:
        w = w * state.valid[..., None]
    w = w[:, start:].to(x.dtype)
    return (x[:, start:] * w).sum(1) / w.sum(1)


def _size_weighted_latent(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """``AttentionPoolLatent.forward`` (``global_pool='map'``, SigLIP's head) with the tokens'
    log(size) and padding as its mask."""
    if attn_mask is not None:
        raise ValueError("vitprune-patched attention pools take no attention mask from the caller")
    return super(type(self), self).forward(x, attn_mask=pool_bias(self, x.dtype, x.shape[1]))


class TimmVit(TimmFamily):
    supported = (
        "timm VisionTransformer: vit_*, deit_* (incl. *_distilled), deit3_* (LayerScale), "
        "reg_tokens, qk_norm=True, class_token=False with global_pool='avg'"
    )

    def claims(self, model):
        return isinstance(model, VisionTransformer)

    def check(self, model):
        super().check(model)
        for i, blk in enumerate(model.blocks):
            if type(blk.attn) is not Attention:
                raise UnsupportedModelError(
                    f"block {i} has {type(blk.attn).__name__}; token methods need timm's Attention. "
                    f"Supported: {self.supported}"
                )
        pool = getattr(model, "attn_pool", None)
        pool_class = original_class(pool)
        if pool is not None and (pool_class is not AttentionPoolLatent or pool.pos_embed is not None):
            raise UnsupportedModelError(
                f"attention pool {pool_class.__name__} with pos_embed={pool.pos_embed is not None} is "
                "not supported: its position embedding cannot follow reduced tokens; allowed: "
                "AttentionPoolLatent without pos_embed (global_pool='map')"
            )
        if pool is None and model.global_pool not in POOLS:
            raise UnsupportedModelError(
                f"global_pool={model.global_pool!r} is not supported; allowed: {POOLS}"
            )

    def block_classes(self, model):
        return (Block,)

    def attn_dim(self, blk):
        return blk.attn.num_heads * blk.attn.head_dim

    def projections(self, blk):
        return (blk.attn.qkv,)

    def view(self, blk, outputs, bias, state, extra):
        return AttentionView(blk.attn, outputs[0], bias, state.bias_per_key(bias))

    def attend(self, blk, x, mask, state, extra):
        return x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x), attn_mask=mask)))

    def feed(self, blk, x):
        return x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))

    def overrides(self, model):
        pool = getattr(model, "attn_pool", None)
        latent = [(pool, {"forward": _size_weighted_latent})] if pool is not None else []
        return [
            (model, {"pool": _size_weighted_pool, "forward_intermediates": restored_intermediates}),
            *latent,
        ]

    def pool_macs_per_token(self, model):
        pool = getattr(model, "attn_pool", None)
        if pool is None:
            return 0
        return (pool.kv.in_features + pool.latent_len) * pool.kv.out_features  # k, v; q·k and a·v

    def head_macs(self, model):
        pool = getattr(model, "attn_pool", None)
        pooled = [] if pool is None else [m for m in pool.modules() if m is not pool.kv]
        head = linear_macs([model.head, getattr(model, "head_dist", None), *pooled])
        if pool is not None and not getattr(model, "pool_include_prefix", False):
            # The pool's per-token cost was charged to every token leaving the last block; timm's
            # pool skips the prefix tokens (class, registers), so their share is taken back here.
            head -= model.num_prefix_tokens * self.pool_macs_per_token(model)
        return head
