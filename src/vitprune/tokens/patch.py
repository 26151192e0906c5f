"""Patching a timm VisionTransformer in place so a token method runs inside its blocks.

Each timm ``Block`` becomes a ``ReducingBlock``: the same modules called in the same order (norm1,
attn, ls1, drop_path1, norm2, mlp, ls2, drop_path2), with the method's reduction placed after the
attention residual and before the MLP (the EViT/ToMe placement). Attention stays timm's own module,
fused SDPA included; proportional attention reaches it as its ``attn_mask`` argument. The model's
class becomes a subclass whose ``pool`` weights average pooling by token size and keeps padding out
of max pooling. ``unpatch`` restores every original class and removes every hook, giving back the
model bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor

from vitprune.tokens.attention import AttentionView, capture_qkv
from vitprune.tokens.state import TokenState


@dataclass
class BlockCount:
    """Tokens per image entering a block's attention and its MLP."""

    attention: Tensor  # [B] long
    mlp: Tensor  # [B] long


@dataclass
class TokenContext:
    """Shared by the patched model and its blocks; ``model.vitprune`` is this object."""

    method: object
    num_prefix: int
    trace_source: bool = False
    state: TokenState | None = None
    counts: list[BlockCount] | None = field(default=None, repr=False)

    @contextmanager
    def recording(self):
        """Collect per-block, per-image token counts of the forwards run inside this context."""
        self.counts = []
        try:
            yield self.counts
        finally:
            self.counts = None

    def record(self, n_attn: Tensor, n_mlp: Tensor) -> None:
        if self.counts is not None:
            self.counts.append(BlockCount(n_attn, n_mlp))


class ReducingBlock(Block):
    """timm's Block with a token reduction between the attention residual and the MLP."""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("vitprune-patched blocks do not take attn_mask/is_causal from the caller")
        ctx: TokenContext = self._vp_ctx
        layer: int = self._vp_layer
        if layer == 0:
            ctx.state = TokenState.start(x, ctx.num_prefix, ctx.trace_source)
        state = ctx.state
        n_attn = state.counts()
        bias = state.attention_bias(_compute_dtype(x), ctx.method.prop_attn)
        active = ctx.method.active(layer)
        qkv = self.attn.qkv
        qkv._vp_capture = active
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=bias)))
        if active:
            view = AttentionView(self.attn, qkv._vp_qkv, bias)
            qkv._vp_qkv = None
            x, ctx.state = ctx.method.reduce(layer, x, state, view)
        qkv._vp_capture = False
        ctx.record(n_attn, ctx.state.counts())
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype attention logits will have: autocast's when it is on, else the activations'."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _size_weighted_pool(self, x: Tensor, pool_type: str | None = None) -> Tensor:
    pool_type = self.global_pool if pool_type is None else pool_type
    state = self.vitprune.state
    if pool_type == "max" and state is not None and state.valid is not None:
        x = x.masked_fill(~state.valid[..., None], float("-inf"))  # padding must not win the max
    if pool_type != "avg" or state is None or (state.size is None and state.valid is None):
        return super(type(self), self).pool(x, pool_type)
    start = 0 if self.pool_include_prefix else self.num_prefix_tokens
    w = state.sizes(x)
    if state.valid is not None:
        w = w * state.valid[..., None]
    w = w[:, start:].to(x.dtype)
    return (x[:, start:] * w).sum(1) / w.sum(1)


_PATCHED_CLASSES: dict[type, type] = {}


def _patched_class(cls: type) -> type:
    if cls not in _PATCHED_CLASSES:
        _PATCHED_CLASSES[cls] = type(
            f"Reducing{cls.__name__}", (cls,), {"pool": _size_weighted_pool, "_vp_original_class": cls}
        )
    return _PATCHED_CLASSES[cls]


def is_patched(model: torch.nn.Module) -> bool:
    return hasattr(type(model), "_vp_original_class")


def patch(model: VisionTransformer, method, trace_source: bool = False) -> TokenContext:
    """Swap in the reducing classes and the qkv capture hooks; ``model.vitprune`` holds the context."""
    ctx = TokenContext(method=method, num_prefix=model.num_prefix_tokens, trace_source=trace_source)
    model.__class__ = _patched_class(type(model))
    model.vitprune = ctx
    for i, blk in enumerate(model.blocks):
        blk.__class__ = ReducingBlock
        blk._vp_ctx, blk._vp_layer = ctx, i
        blk.attn.qkv._vp_capture = False
        blk.attn.qkv._vp_qkv = None
        blk.attn.qkv.register_forward_hook(capture_qkv)
    return ctx


def unpatch(model: VisionTransformer) -> None:
    """Undo ``patch``: original classes, no hooks, no extra attributes."""
    model.__class__ = type(model)._vp_original_class
    del model.vitprune
    for blk in model.blocks:
        blk.__class__ = Block
        del blk._vp_ctx, blk._vp_layer
        qkv = blk.attn.qkv
        # Found by function rather than by handle, so a deep-copied model unpatches too.
        for key in [k for k, hook in qkv._forward_hooks.items() if hook is capture_qkv]:
            del qkv._forward_hooks[key]
        del qkv._vp_capture, qkv._vp_qkv
