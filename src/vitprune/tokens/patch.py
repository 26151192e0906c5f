"""Patching a model in place so a token method runs inside its blocks.

The model's family adapter (``tokens/families``) says where the blocks are and how to call each
block's own modules in two halves. Each block's class becomes a subclass whose forward runs the
attention half, then the method's reduction, then the MLP half (the EViT/ToMe placement).
Attention stays the library's own module, fused SDPA included; proportional attention and padding
reach it as its additive mask argument. A block that neither reduces nor sees merged or padded
tokens runs its library's own forward, so zero reduction costs nothing. The model (and any module
its adapter names, e.g. the pooling) becomes a subclass with the adapter's overrides, such as
pooling weighted by token size. With dense outputs (``tokens/dense.py``) a block also snapshots the
restored grid before it reduces and hands on its output restored where asked. ``unpatch`` restores
every original class and attribute, giving back the model bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import vitprune.tokens.inputs as inputs
from vitprune.tokens.attention import capture_qkv, release_qkv
from vitprune.tokens.dense import Dense
from vitprune.tokens.families import family_of
from vitprune.tokens.families.base import Family
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
    family: Family
    dense: Dense
    trace_source: bool = False
    state: TokenState | None = None  # None until the current forward's first reducing block
    start: TokenState | None = None  # the state entering that block: every token still itself
    counts: list[BlockCount] | None = field(default=None, repr=False)
    swapped: list[nn.Module] = field(default_factory=list, repr=False)
    inputs: list = field(default_factory=list, repr=False)  # what tokens/inputs.py installed

    @contextmanager
    def recording(self):
        """Collect per-block, per-image token counts of the forwards run inside this context."""
        self.counts = []
        try:
            yield self.counts
        finally:
            self.counts = None


def _reducing_forward(self, x: Tensor, *args, **kwargs) -> Tensor:
    """A block's forward with the method's reduction between its attention and MLP halves; its output
    restored to the full grid where dense outputs ask for it (``tokens/dense.py``)."""
    out = _reduced(self, x, *args, **kwargs)
    dense = self._vp_ctx.dense
    return dense.leave(self._vp_layer, out, self._vp_ctx.state) if dense.on else out


def _reduced(self, x: Tensor, *args, **kwargs) -> Tensor:
    ctx: TokenContext = self._vp_ctx
    layer: int = self._vp_layer
    if layer == 0:
        ctx.state = ctx.start = None  # a new forward: no token removed yet
    active = ctx.method.active(layer)
    if ctx.state is None and not active and ctx.counts is None:
        # Nothing removed so far and nothing to remove here: the library's own forward, with no token
        # state built at all (zero reduction then costs one check per block, eager or compiled).
        return self._vp_original_class.forward(self, x, *args, **kwargs)
    given = [*args, *(kwargs.get(k) for k in ("attn_mask", "attention_mask", "is_causal"))]
    if any(a is not None and a is not False for a in given):
        raise ValueError("vitprune-patched blocks take no attention mask from the caller")
    if ctx.state is None:  # the first block that reduces (or counts): every token is still itself
        ctx.state = ctx.start = TokenState.start(x, ctx.num_prefix, ctx.trace_source or ctx.dense.on)
    state, family = ctx.state, ctx.family
    n_attn = None if ctx.counts is None else state.counts()
    bias = state.attention_bias(_compute_dtype(x), ctx.method.prop_attn)
    plain = not family.positional or state is ctx.start  # positions given by the model still fit
    if not active and bias is None and n_attn is None and plain:
        return self._vp_original_class.forward(self, x, *args, **kwargs)
    projections = family.projections(self)
    for p in projections:
        p._vp_capture = active
    x = family.attend(self, x, bias, state, kwargs)
    if active:
        view = family.view(self, [p._vp_qkv for p in projections], bias, state, kwargs)
        for p in projections:
            p._vp_capture, p._vp_qkv = False, None
        if ctx.dense.on:  # what each token dropped here keeps: its value after this attention residual
            ctx.dense.snapshot(x, state, ctx.start)
        x, ctx.state = ctx.method.reduce(layer, x, state, view)
    if n_attn is not None:
        ctx.counts.append(BlockCount(n_attn, ctx.state.counts()))
    return family.feed(self, x)


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype attention logits will have: autocast's when it is on, else the activations'."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


_SUBCLASSES: dict[type, type] = {}


def _swap(module: nn.Module, methods: dict) -> None:
    """Give ``module`` a cached subclass of its class with ``methods`` (one set per class)."""
    cls = type(module)
    if cls not in _SUBCLASSES:
        _SUBCLASSES[cls] = type(f"Reducing{cls.__name__}", (cls,), {**methods, "_vp_original_class": cls})
    module.__class__ = _SUBCLASSES[cls]


def is_patched(model: nn.Module) -> bool:
    return hasattr(type(model), "_vp_original_class")


def patch(model: nn.Module, method, trace_source: bool = False, dense: bool = False) -> TokenContext:
    """Swap in the reducing classes and the q/k/v capture; ``model.vitprune`` holds the context.
    ``dense``: the last block hands on the restored full grid (``tokens/dense.py``)."""
    family = family_of(model)
    inputs.check(model, family, method)  # before anything changes: it may refuse the model
    num_prefix = family.num_prefix(model)
    restoring = Dense(len(family.blocks(model)), num_prefix, dense, inputs.resampled(model, family, method))
    ctx = TokenContext(method, num_prefix, family, restoring, trace_source)
    for module, methods in family.overrides(model):
        _swap(module, methods)
        module._vp_ctx = ctx
        ctx.swapped.append(module)
    model.vitprune = ctx
    family.swapped(model)
    for i, blk in enumerate(family.blocks(model)):
        _swap(blk, {"forward": _reducing_forward})
        blk._vp_ctx, blk._vp_layer = ctx, i
        for p in family.projections(blk):
            capture_qkv(p)
    ctx.inputs = inputs.install(model, ctx)  # last: the model's class may become a resizing subclass
    return ctx


def unpatch(model: nn.Module) -> None:
    """Undo ``patch``: original classes, no extra attributes."""
    ctx: TokenContext = model.vitprune
    inputs.uninstall(ctx.inputs)
    for blk in ctx.family.blocks(model):
        blk.__class__ = blk._vp_original_class
        del blk._vp_ctx, blk._vp_layer
        for p in ctx.family.projections(blk):
            release_qkv(p)
    for module in ctx.swapped:
        module.__class__ = module._vp_original_class
        del module._vp_ctx
    del model.vitprune
