"""What a block's attention computed, read back without re-running or re-typing it.

A forward hook on ``attn.qkv`` keeps the projection output of the blocks that reduce tokens. From it
this view derives, lazily and only when a method asks:
- ``keys()``: K after timm's own ``k_norm`` (ToMe's matching metric is its mean over heads);
- ``cls_attention()``: the softmax row of one query (the CLS token) over all keys, computed alone,
  O(N·H), with the same proportional-attention bias the block used. The N×N matrix is never built,
  so the block keeps timm's fused scaled-dot-product attention;
- ``value_norms()``: ‖v_j‖ over all heads (ATS/PPT's importance weight).
"""

from __future__ import annotations

from timm.layers import Attention
from torch import Tensor, nn


def capture_qkv(module: nn.Module, args, output: Tensor) -> None:
    """Forward hook for ``attn.qkv``: remember the output while the block asked for it."""
    if module._vp_capture:
        module._vp_qkv = output


class AttentionView:
    def __init__(self, attn: Attention, qkv: Tensor, bias: Tensor | None):
        b, n, _ = qkv.shape
        self._attn = attn
        self._q, self._k, self._v = qkv.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        self._bias = bias
        self._keys: Tensor | None = None

    def keys(self) -> Tensor:
        """K of every token, ``[B, H, N, head_dim]``, after the attention's k-norm."""
        if self._keys is None:
            self._keys = self._attn.k_norm(self._k)
        return self._keys

    def cls_attention(self, index: int = 0) -> Tensor:
        """Attention of query ``index`` over all keys per head, ``[B, H, N]``, in float32."""
        q = self._attn.q_norm(self._q[:, :, index : index + 1])
        logits = (q @ self.keys().transpose(-2, -1)).float() * self._attn.scale
        if self._bias is not None:
            logits = logits + self._bias.float()
        return logits.softmax(dim=-1)[:, :, 0]

    def value_norms(self) -> Tensor:
        """‖v_j‖₂ of each token's value, concatenated over heads, ``[B, N]``, in float32."""
        return self._v.float().pow(2).sum(dim=(1, 3)).sqrt()
