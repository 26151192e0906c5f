"""timm's ``Eva``: EVA-02 (``eva02_*``) and the RoPE ViTs (``vit_*_rope_*``), rotary positions and all.

Blocks are ``EvaBlock`` with ``EvaAttention`` or ``AttentionRope``; the halves call ``norm1, attn(rope=,
attn_mask=), gamma_1, drop_path1`` and ``norm2, mlp, gamma_2, drop_path2`` as ``EvaBlock.forward``
does. The model hands every block one rotary embedding per patch of the full grid; a block after a
reduction gets, for each token left, the rotation of the patch it stands for (``state.pos``): a kept
token keeps its own, a token merged by ToMe keeps the one of the token it was merged into (the
destination of the bipartite match), and EViT's fused token, which stands for many dropped patches
at once, gets no rotation (sin 0, cos 1), as the prefix tokens do.

EVA-02's ``qkv`` with separate q/v biases runs through ``F.linear`` (no module call to capture), so
the view takes q and k from the attention's own ``q_norm``/``k_norm`` outputs and rotates them as
the attention does; v is projected again from the attention's input only if a method asks for
value norms (PPT).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from timm.layers import AttentionRope, apply_rot_embed_cat
from timm.models.eva import Eva, EvaAttention, EvaBlock
from torch import Tensor, nn

from vitprune.tokens.attention import AttentionView
from vitprune.tokens.families.base import UnsupportedModelError
from vitprune.tokens.families.timm_common import TimmFamily, restored_intermediates
from vitprune.tokens.families.timm_vit import POOLS, _size_weighted_pool


def follow(rope: Tensor | None, pos: Tensor, num_prefix: int) -> Tensor | None:
    """The rotary embedding of each patch token ``pos[:, num_prefix:]`` stands for, ``[B, 1|H, N, dim]``,
    from the model's ``[(H,) N0, dim]`` table (sin | cos); a token of position -1 gets the identity."""
    if rope is None:
        return None
    sin, cos = rope.chunk(2, -1)
    identity = torch.cat([torch.zeros_like(sin[..., :1, :]), torch.ones_like(cos[..., :1, :])], -1)
    table = torch.cat([rope, identity], -2)
    idx = pos[:, num_prefix:] - num_prefix
    idx = torch.where(idx >= 0, idx, table.shape[-2] - 1)
    if rope.dim() == 2:
        return table[idx][:, None]
    return table[:, idx].transpose(0, 1)


class TimmEva(TimmFamily):
    supported = "timm Eva: eva02_*, vit_*_rope_* (EvaBlock, EvaAttention or AttentionRope without GQA)"
    positional = True

    def claims(self, model):
        return isinstance(model, Eva)

    def check(self, model):
        super().check(model)
        for i, blk in enumerate(model.blocks):
            attn = blk.attn
            if type(attn) not in (EvaAttention, AttentionRope) or getattr(attn, "num_kv_groups", 1) > 1:
                raise UnsupportedModelError(
                    f"block {i} has {type(attn).__name__}; token methods need EvaAttention or AttentionRope "
                    "without grouped-query attention"
                )
        if model.attn_pool is not None or model.global_pool not in POOLS:
            raise UnsupportedModelError(
                f"Eva global_pool={model.global_pool!r} is not supported; allowed: {POOLS}"
            )
        if model.patch_drop is not None:
            raise UnsupportedModelError(
                "Eva with patch dropout: its kept patches have no fixed grid positions"
            )

    def block_classes(self, model):
        return (EvaBlock,)

    def attn_dim(self, blk):
        return blk.attn.num_heads * blk.attn.head_dim

    def projections(self, blk):
        return (blk.norm1, blk.attn.q_norm, blk.attn.k_norm)

    def view(self, blk, outputs, bias, state, extra):
        x, q, k = outputs
        attn, npt = blk.attn, blk.attn.num_prefix_tokens
        rope = follow(extra.get("rope"), state.pos, npt)
        if rope is not None:
            half = getattr(attn, "rotate_half", False)
            q = torch.cat([q[:, :, :npt], apply_rot_embed_cat(q[:, :, npt:], rope, half=half)], 2)
            k = torch.cat([k[:, :, :npt], apply_rot_embed_cat(k[:, :, npt:], rope, half=half)], 2)
        return AttentionView.of_heads(q, k, lambda: _values(attn, x), attn.scale, bias)

    def attend(self, blk, x, mask, state, extra):
        rope = follow(extra.get("rope"), state.pos, blk.attn.num_prefix_tokens)
        y = blk.attn(blk.norm1(x), rope=rope, attn_mask=mask)
        return x + blk.drop_path1(y if blk.gamma_1 is None else blk.gamma_1 * y)

    def feed(self, blk, x):
        y = blk.mlp(blk.norm2(x))
        return x + blk.drop_path2(y if blk.gamma_2 is None else blk.gamma_2 * y)

    def overrides(self, model):
        return [(model, {"pool": _size_weighted_pool, "forward_intermediates": restored_intermediates})]

    def any_grid(self, model, grid):
        """timm's ``dynamic_img_size``, and RoPE for the grid: a RoPE that caches its table for one grid
        is swapped, while resized, for a copy rebuilt by its own ``update_feat_shape``; one that takes
        the grid per call (mixed RoPE) needs nothing."""
        resizing = super().any_grid(model, grid)
        rope = model.rope
        cached = rope is not None and getattr(rope, "feat_shape", None) is not None
        if not cached or next(rope.parameters(), None) is not None:
            return resizing
        grid_rope = copy.deepcopy(rope)
        grid_rope.update_feat_shape(list(grid))
        return replace(resizing, attributes=(*resizing.attributes, (model, "rope", grid_rope)))


def _values(attn: nn.Module, x: Tensor) -> Tensor:
    """V ``[B, H, N, head_dim]`` projected again from the attention's input ``x``."""
    b, n, _ = x.shape
    if attn.qkv is None:
        v = attn.v_proj(x)
    else:
        d = attn.qkv.out_features // 3
        bias = attn.v_bias if getattr(attn, "v_bias", None) is not None else attn.qkv.bias
        v = F.linear(x, attn.qkv.weight[2 * d :], None if bias is None else bias[-d:])
    return v.reshape(b, n, attn.num_heads, -1).transpose(1, 2)
