"""What a block's attention computed, read back without re-running or re-typing it.

``attn.qkv`` becomes a capturing subclass of its own class that keeps its output while its block
asks for it (no forward hook: hooks send every call down torch's slow module-call path). From it
this view derives, lazily and only when a method asks:
- ``keys()``: K after the attention's own ``k_norm`` (timm's; Hugging Face's encoders have none);
  ToMe's matching metric is its mean over heads;
- ``cls_attention()``: the softmax row of one query (the CLS token) over all keys, computed alone,
  O(N·H), with the same proportional-attention bias the block used. The N×N matrix is never built,
  so the block keeps timm's fused scaled-dot-product attention;
- ``value_norms()``: ‖v_j‖ over all heads (ATS/PPT's importance weight).
"""

from __future__ import annotations

from timm.layers import Attention
from torch import Tensor, nn

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
    """q, k, v per head of one attention call, from timm's fused ``qkv`` output (or, through
    :meth:`of_heads`, from any family's separate projections)."""

    def __init__(self, attn: Attention, qkv: Tensor, bias: Tensor | None):
        b, n, _ = qkv.shape
        q, k, v = qkv.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        self._set(q, k, v, attn.scale, bias, attn.q_norm, attn.k_norm)

    @classmethod
    def of_heads(cls, q: Tensor, k: Tensor, v, scale: float, bias: Tensor | None) -> AttentionView:
        """A view of ``[B, H, N, head_dim]`` q, k, v that need no normalisation before use; ``v`` may be
        a function returning it, called only if a method asks for value norms."""
        view = cls.__new__(cls)
        view._set(q, k, v, scale, bias, nn.Identity(), nn.Identity())
        return view

    def _set(self, q, k, v, scale, bias, q_norm: nn.Module, k_norm: nn.Module) -> None:
        self._q, self._k, self._v, self._scale, self._bias = q, k, v, scale, bias
        self._q_norm, self._k_norm = q_norm, k_norm
        self._keys: Tensor | None = None

    def keys(self) -> Tensor:
        """K of every token, ``[B, H, N, head_dim]``, after the attention's k-norm."""
        if self._keys is None:
            self._keys = self._k_norm(self._k)
        return self._keys

    def cls_attention(self, index: int = 0) -> Tensor:
        """Attention of query ``index`` over all keys per head, ``[B, H, N]``, in float32."""
        q = self._q_norm(self._q[:, :, index : index + 1])
        logits = (q @ self.keys().transpose(-2, -1)).float() * self._scale
        if self._bias is not None:
            logits = logits + self._bias.float()
        return logits.softmax(dim=-1)[:, :, 0]

    def value_norms(self) -> Tensor:
        """‖v_j‖₂ of each token's value, concatenated over heads, ``[B, N]``, in float32."""
        v = self._v() if callable(self._v) else self._v  # computed on demand where nothing holds it
        return v.float().pow(2).sum(dim=(1, 3)).sqrt()
