"""timm's ``Beit`` (BEiT, BEiT v2): relative position bias that follows the kept tokens.

Blocks are BEiT's ``Block`` with BEiT's ``Attention``; the halves call ``norm1, attn(shared_rel_pos_bias=),
gamma_1, drop_path1`` and ``norm2, mlp, gamma_2, drop_path2`` as ``Block.forward`` does. The bias
between two tokens is the one between the patches they stand for (``state.pos``): the attention's
``_get_rel_pos_bias`` table [H, N0, N0] (and the model's shared one) is gathered by rows and columns
of the current tokens. A merged token uses the bias of the token it was merged into; EViT's fused
token, which stands for many dropped patches, uses the class token's row and column (no grid
position). Our additive mask rides on ``shared_rel_pos_bias``, which BEiT adds in both its fused
and its explicit attention path.

BEiT's ``qkv`` with q/v biases runs through ``F.linear(x, qkv.weight, bias)``, with no module call
to capture; while patched the attention reads ``qkv_bias_separate`` as True (a property of the
patched class; the instance is untouched), so it calls ``qkv`` and adds the biases in place, and the
view reads q, k and v from that output at no extra cost.
Average pooling happens inline in ``forward_head``; the patched head hands it the size-weighted mean
as a single patch token, whose mean is itself.
"""

from __future__ import annotations

import torch
from timm.models.beit import Attention, Beit, Block
from torch import Tensor

from vitprune.tokens.attention import AttentionView
from vitprune.tokens.families.base import UnsupportedModelError, original_class, pooled_state
from vitprune.tokens.families.timm_common import TimmFamily, restored_intermediates


def gather_pairs(bias: Tensor, pos: Tensor) -> Tensor:
    """``bias[..., pos_i, pos_j]`` per image, ``[B, H, N, N]``, from a ``[1|B, H, N0, N0]`` table;
    position -1 reads row and column 0 (the class token's)."""
    b, n = pos.shape
    idx = pos.clamp_min(0)
    full = bias.expand(b, -1, -1, -1)
    rows = full.gather(2, idx[:, None, :, None].expand(-1, full.shape[1], -1, full.shape[3]))
    return rows.gather(3, idx[:, None, None, :].expand(-1, full.shape[1], n, -1))


def follow_pairs(bias: Tensor, ctx) -> Tensor:
    """``bias`` for the current tokens of ``ctx``: unchanged while no token was removed (so unreduced
    blocks stay bit for bit BEiT's), else :func:`gather_pairs`."""
    return bias if ctx.state is ctx.start else gather_pairs(bias, ctx.state.pos)


def _followed_rel_pos_bias(self) -> Tensor:
    """BEiT ``Attention._get_rel_pos_bias`` for the current tokens."""
    return follow_pairs(super(type(self), self)._get_rel_pos_bias(), self._vp_ctx)


def _size_weighted_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
    """``Beit.forward_head`` whose average pool weighs tokens by size and skips padding."""
    state, p = pooled_state(self), self.num_prefix_tokens
    if (
        self.global_pool == "avg"
        and state is not None
        and (state.size is not None or state.valid is not None)
    ):
        w = state.sizes(x) if state.valid is None else state.sizes(x) * state.valid[..., None]
        w = w[:, p:].to(x.dtype)
        x = torch.cat([x[:, :p], ((x[:, p:] * w).sum(1) / w.sum(1))[:, None]], 1)
    return super(type(self), self).forward_head(x, pre_logits)


class TimmBeit(TimmFamily):
    supported = "timm Beit: beit_*, beitv2_* (relative position bias, own or shared)"
    positional = True

    def claims(self, model):
        return isinstance(model, Beit)

    def check(self, model):
        super().check(model)
        for i, blk in enumerate(model.blocks):
            if original_class(blk.attn) is not Attention:
                raise UnsupportedModelError(
                    f"block {i} has {type(blk.attn).__name__}; token methods need BEiT's Attention"
                )

    def block_classes(self, model):
        return (Block,)

    def any_grid(self, model, grid):
        raise UnsupportedModelError(
            "timm Beit cannot take a resized input: its relative position bias is a table for one window, "
            "which timm resizes only by rewriting the weights (set_input_size), not per input"
        )

    def has_class_token(self, model):
        return True

    def attn_dim(self, blk):
        return blk.attn.qkv.out_features // 3

    def projections(self, blk):
        return (blk.attn.qkv,)

    def view(self, blk, outputs, bias, state, extra):
        attn, qkv = blk.attn, outputs[0]
        rel = self._bias(blk, None, extra)
        row = None if rel is None else rel[:, :, :1]  # the class token's logits bias, as the block used
        row = bias if row is None else row if bias is None else row + bias
        b, n, _ = qkv.shape
        q, k, v = qkv.reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        return AttentionView.of_heads(q, k, v, attn.scale, row)

    def attend(self, blk, x, mask, state, extra):
        shared = self._bias(blk, mask, extra, table=False)
        y = blk.attn(blk.norm1(x), shared_rel_pos_bias=shared)
        return x + blk.drop_path1(y if blk.gamma_1 is None else blk.gamma_1 * y)

    def feed(self, blk, x):
        y = blk.mlp(blk.norm2(x))
        return x + blk.drop_path2(y if blk.gamma_2 is None else blk.gamma_2 * y)

    def _bias(self, blk, mask, extra, table: bool = True) -> Tensor | None:
        """The additive bias the attention sees on top of ``mask``: the shared table gathered for the
        current tokens, plus (``table``) the block's own gathered table."""
        parts = [mask]
        if extra.get("shared_rel_pos_bias") is not None:
            parts.append(follow_pairs(extra["shared_rel_pos_bias"], blk._vp_ctx))
        if table and blk.attn.relative_position_bias_table is not None:
            parts.append(blk.attn._get_rel_pos_bias())
        parts = [p for p in parts if p is not None]
        return None if not parts else sum(parts[1:], parts[0])

    def overrides(self, model):
        attn = {"_get_rel_pos_bias": _followed_rel_pos_bias, "qkv_bias_separate": property(lambda self: True)}
        attns = [(b.attn, attn) for b in model.blocks]
        overrides = {"forward_head": _size_weighted_head, "forward_intermediates": restored_intermediates}
        return [(model, overrides), *attns]
