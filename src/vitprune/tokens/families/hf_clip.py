"""Hugging Face CLIP and SigLIP vision towers (``vitprune[hf]``): ``CLIPVisionModel`` and
``SiglipVisionModel``.

Their encoder layer is ``layer_norm1, self_attn(attention_mask=), +residual`` then ``layer_norm2,
mlp, +residual`` (``CLIPEncoderLayer`` / ``SiglipEncoderLayer``). CLIP pools its class token,
which is never reduced. SigLIP has no class token (CLS-scored methods refuse it) and pools with a
multi-head attention probe (``SiglipMultiheadAttentionPoolingHead``): its ``nn.MultiheadAttention``
gets log(token size) and the padding as its float mask (``base.pool_bias``).
"""

from __future__ import annotations

from torch import Tensor

from vitprune.tokens.families.base import linear_macs, pool_bias
from vitprune.tokens.families.hf import HfEncoder


def _size_weighted_probe(self, query: Tensor, key: Tensor, value: Tensor, **kwargs):
    """``nn.MultiheadAttention.forward`` with every key's log(size) and padding as its float mask."""
    bias = pool_bias(self, key.dtype, key.shape[1])
    if bias is not None:  # [B, 1, 1, N] → [B·heads, 1, N], one row per probe
        kwargs["attn_mask"] = bias[:, 0].repeat_interleave(self.num_heads, 0)
    return super(type(self), self).forward(query, key, value, **kwargs)


class HfClip(HfEncoder):
    supported = "transformers CLIPVisionModel (class token pooling)"
    models = ("CLIPVisionModel",)
    layer = "CLIPEncoderLayer"
    attn_name = "self_attn"

    def blocks(self, model):
        return model.base_model.encoder.layers

    def num_prefix(self, model):
        return 1

    def has_class_token(self, model):
        return True

    def patch_embed(self, model):
        return model.base_model.embeddings.patch_embedding

    def attend(self, blk, x, mask, state, extra):
        return x + blk.self_attn(hidden_states=blk.layer_norm1(x), attention_mask=mask)[0]

    def feed(self, blk, x):
        return x + blk.mlp(blk.layer_norm2(x))


class HfSiglip(HfClip):
    supported = "transformers SiglipVisionModel (no class token; attention-pool head weighted by size)"
    models = ("SiglipVisionModel",)
    layer = "SiglipEncoderLayer"

    def num_prefix(self, model):
        return 0

    def has_class_token(self, model):
        return False

    def head_macs(self, model):
        if not model.config.vision_use_head:
            return 0
        d = model.config.hidden_size
        return d * d + linear_macs(model.head.modules())  # the probe's query projection, then out/MLP

    def pool_macs_per_token(self, model):
        d = model.config.hidden_size
        return (2 * d * d + 2 * d) if model.config.vision_use_head else 0  # keys, values, q·k and a·v

    def overrides(self, model):
        extra = (
            [(model.head.attention, {"forward": _size_weighted_probe})]
            if model.config.vision_use_head
            else []
        )
        return [*super().overrides(model), *extra]
