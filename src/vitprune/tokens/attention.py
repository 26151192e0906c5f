"""What a block's attention computed, read back without re-running or re-typing it.

``attn.qkv`` becomes a capturing subclass of its own class that keeps its output while its block
asks for it (no forward hook: hooks send every call down torch's slow module-call path). From it
this view derives, lazily and only when a method asks:
- ``keys()``: K after the attention's own ``k_norm`` (timm's; Hugging Face's encoders have none);
  ToMe's matching metric is its mean over heads (``summed_keys``: cosine ignores the 1/H);
- ``cls_attention()``: the softmax row of one query (the CLS token) over all keys, computed alone,
  O(N·H), with the same proportional-attention bias the block used. The N×N matrix is never built,
  so the block keeps timm's fused scaled-dot-product attention;
- ``value_norms()``: ‖v_j‖ over all heads (ATS/PPT's importance weight).
"""

from __future__ import annotations

import torch
from timm.layers import Attention
from torch import Tensor, nn

from vitprune.tokens.cache import constant, scalar

_CAPTURING: dict[type, type] = {}


def _capturing_forward(self, x: Tensor) -> Tensor:
    out = super(type(self), self).forward(x)
    if self._vp_capture:
        self._vp_qkv = out
    return out


def capture_qkv(qkv: nn.Module) -> None:
    """Make ``qkv`` keep its output in ``qkv._vp_qkv`` whenever ``qkv._vp_capture`` is True."""
    cls = type(qkv)
    if cls not in _CAPTURING:
        _CAPTURING[cls] = type(f"Capturing{cls.__name__}", (cls,), {"forward": _capturing_forward})
    qkv.__class__ = _CAPTURING[cls]
    qkv._vp_capture, qkv._vp_qkv = False, None


def release_qkv(qkv: nn.Module) -> None:
    """Undo :func:`capture_qkv`: the original class, no extra attributes."""
    qkv.__class__ = type(qkv).__mro__[1]
    del qkv._vp_capture, qkv._vp_qkv


class AttentionView:
    """q, k, v of one attention call, read lazily: from timm's fused ``qkv`` output as it lies
    (``[B, N, 3·H·head_dim]``, no reshape until a method asks), or, through :meth:`of_heads`, from any
    family's separate projections."""

    def __init__(self, attn: Attention, qkv: Tensor, bias: Tensor | None, per_key: Tensor | None = None):
        """``bias``: the block's additive mask ``[B, 1, 1, N]``; ``per_key``: the same values as
        ``[B, N, 1]`` where the caller holds them (the CLS row then adds them without a view)."""
        self._qkv, self._heads, self._head_dim = qkv, attn.num_heads, attn.head_dim
        self._set(None, None, None, attn.scale, bias, attn.q_norm, attn.k_norm)
        self._bias_per_key = per_key

    @classmethod
    def of_heads(cls, q: Tensor, k: Tensor, v, scale: float, bias: Tensor | None) -> AttentionView:
        """A view of ``[B, H, N, head_dim]`` q, k, v that need no normalisation before use; ``v`` may be
        a function returning it, called only if a method asks for value norms."""
        view = cls.__new__(cls)
        view._qkv = None
        view._set(q, k, v, scale, bias, nn.Identity(), nn.Identity())
        return view

    def _set(self, q, k, v, scale, bias, q_norm: nn.Module, k_norm: nn.Module) -> None:
        self._q, self._k, self._v, self._scale, self._bias = q, k, v, scale, bias
        self._bias_per_key: Tensor | None = None
        self._q_norm = None if isinstance(q_norm, nn.Identity) else q_norm
        self._k_norm = None if isinstance(k_norm, nn.Identity) else k_norm
        self._keys: Tensor | None = None

    def _fused(self, part: int, split: bool = True) -> Tensor:
        """Part ``part`` (0 q, 1 k, 2 v) of the fused output, a view: ``[B, N, H, head_dim]``, or with
        ``split=False`` ``[B, N, H·head_dim]``."""
        b, n, _ = self._qkv.shape
        h, d = self._heads, self._head_dim
        shape = (b, n, h, d) if split else (b, n, h * d)
        if torch.compiler.is_compiling():
            return self._qkv[..., part * h * d : (part + 1) * h * d].reshape(shape)
        s0, s1, s2 = self._qkv.stride()  # eager: one as_strided call, not a slice and a view
        strides = (s0, s1, d * s2, s2) if split else (s0, s1, s2)
        return self._qkv.as_strided(shape, strides, self._qkv.storage_offset() + part * h * d * s2)

    def _query(self, index: int) -> Tensor:
        """The query of token ``index``, all heads, ``[B, H·head_dim, 1]``, a view."""
        b = self._qkv.shape[0]
        c = self._heads * self._head_dim
        if torch.compiler.is_compiling():
            return self._qkv[:, index, :c].reshape(b, c, 1)
        s0, s1, s2 = self._qkv.stride()
        return self._qkv.as_strided((b, c, 1), (s0, s2, s2), self._qkv.storage_offset() + index * s1)

    def _token_keys(self) -> Tensor:
        """K after the k-norm, ``[B, N, H, head_dim]`` for a fused view, ``[B, H, N, head_dim]`` else."""
        if self._keys is None:
            k = self._fused(1) if self._qkv is not None else self._k
            self._keys = k if self._k_norm is None else self._k_norm(k)
        return self._keys

    def keys(self) -> Tensor:
        """K of every token, ``[B, H, N, head_dim]``, after the attention's k-norm."""
        k = self._token_keys()
        return k.transpose(1, 2) if self._qkv is not None else k

    def summed_keys(self) -> Tensor:
        """K summed over heads, ``[B, N, head_dim]``: ToMe's matching metric (Bolya et al. 2023, §3) is
        their mean, and its cosine similarity is the same without the 1/H (one call fewer);
        ``[B, N, 1, head_dim]`` from a fused output, where a reduction that keeps its dim is one call."""
        if self._qkv is None:
            return self._token_keys().sum(1)
        return self._token_keys().sum(2, keepdim=True)

    def cls_attention(self, index: int = 0) -> Tensor:
        """Attention of query ``index`` over all keys per head, ``[B, H, N]``, in float32."""
        if self._qkv is not None:
            return _softmax32(self._fused_cls_logits(index)).transpose(1, 2)
        q = self._q[:, :, index : index + 1]
        logits = (q @ self.keys().transpose(-2, -1)).float() * self._scale
        if self._bias is not None:
            logits = logits + self._bias.float()
        return logits.softmax(dim=-1)[:, :, 0]

    def cls_scores(
        self, index: int = 0, heads: str = "mean", start: int = 0, by_value: bool = False
    ) -> Tensor:
        """Attention of query ``index`` over the keys from ``start`` on, ``heads`` "mean" or "sum" over
        heads, ``[B, N - start]``, in float32: EViT's token score (Liang et al. 2022, §3.2), PPT's and
        STAR's too. ``by_value``: each key's score times ‖v_j‖ (``value_norms``), ATS's importance."""
        if self._qkv is None:
            a = self.cls_attention(index)
            scores = a.mean(1) if heads == "mean" else a.sum(1)
            return (scores * self.value_norms() if by_value else scores)[:, start:]
        a = _softmax32(self._fused_cls_logits(index))  # [B, N, H]
        scores = a.sum(2, keepdim=True)  # [B, N, 1]: kept dims, the reduction's one call
        if heads != "sum":
            scores = scores.div_(scalar(self._heads, a))  # what mean(2) computes, without its scalar copy
        if by_value:
            scores = scores * self._fused_value_norms()
        return _rows_from(scores, start)

    def _fused_cls_logits(self, index: int) -> Tensor:
        """Scaled logits of query ``index`` per head, ``[B, N, H]``, with the block's bias.

        One batched matmul for every head: the query is laid out block-diagonally, ``[B, H·d, H]``
        (head h's query in rows h·d..(h+1)·d of column h, zeros elsewhere), so the fused keys
        ``[B, N, H·d]`` times it give each head's logits; the scale rides in the same mask."""
        b, n, _ = self._qkv.shape
        h, d = self._heads, self._head_dim
        c = h * d
        q = self._query(index)  # [B, H·d, 1]
        if self._q_norm is not None:
            q = self._q_norm(q.view(b, h, d)).view(b, c, 1)
        k = self._fused(1, split=False) if self._k_norm is None else self._token_keys().view(b, n, c)
        diagonal = constant(
            ("cls-heads", h, d, self._scale, q.dtype, q.device),
            lambda: torch.eye(h, dtype=q.dtype, device=q.device).repeat_interleave(d, 0) * self._scale,
        )
        logits = torch.bmm(k, q * diagonal)
        if self._bias is not None:
            bias = self._bias_per_key
            if bias is None:
                bias = self._bias.view(self._bias.shape[0], n, 1)
            logits = logits + (bias if bias.dtype == logits.dtype else bias.to(logits.dtype))
        return logits

    def value_norms(self) -> Tensor:
        """‖v_j‖₂ of each token's value, concatenated over heads, ``[B, N]``, in float32."""
        if self._qkv is not None:
            return _rows_from(self._fused_value_norms(), 0)
        v = self._v() if callable(self._v) else self._v  # computed on demand where nothing holds it
        return v.float().pow(2).sum(dim=(1, 3)).sqrt()

    def _fused_value_norms(self) -> Tensor:
        """``value_norms`` as ``[B, N, 1]``, from the fused output (no cast call where it is float32)."""
        v = self._fused(2, split=False)
        if v.dtype == torch.float32:
            return torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        return torch.linalg.vector_norm(v, dim=-1, keepdim=True, dtype=torch.float32)


def _rows_from(t: Tensor, start: int) -> Tensor:
    """``t[:, start:, 0]`` of a ``[B, N, 1]`` tensor, ``[B, N - start]``; eager, one ``as_strided`` call."""
    if torch.compiler.is_compiling():
        return t[:, start:, 0]
    s0, s1, _ = t.stride()
    return t.as_strided((t.shape[0], t.shape[1] - start), (s0, s1), t.storage_offset() + start * s1)


def _softmax32(logits: Tensor) -> Tensor:
    """Softmax over the tokens (dim 1) in float32; no cast call where the logits are float32 already,
    and eager, ATen's kernel called directly (``softmax`` is a call that makes one more)."""
    if logits.dtype != torch.float32:
        return logits.softmax(1, dtype=torch.float32)
    return logits.softmax(dim=1) if torch.compiler.is_compiling() else torch._softmax(logits, 1, False)
