"""Hugging Face transformers vision encoders (``vitprune[hf]``), one adapter per layer layout.

Every encoder here projects q, k and v with three ``nn.Linear`` (``q_proj``, ``k_proj``,
``v_proj``) and hands the attention function an additive mask (SDPA or eager; both add it to the
logits), so proportional attention and padding reach the library's own attention unchanged. The
halves call each layer's own modules in the order its ``forward`` does (transformers 5:
``modeling_vit``, ``modeling_deit``, ``modeling_dinov2_with_registers``, ``modeling_clip``,
``modeling_siglip``). Outputs keep their transformers types; ``last_hidden_state`` holds the
tokens left after reduction (with ``vitprune.apply(..., dense=True)``, it and ``output_hidden_states``
are on the full patch grid). The class, distillation and register tokens stay first and are never
reduced, so the heads that read them are unchanged. Checked against transformers 5.x.
"""

from __future__ import annotations

import functools
import sys

from vitprune.tokens.attention import AttentionView
from vitprune.tokens.families.base import AnyGrid, Family, UnsupportedModelError, linear_macs, original_class

ADDITIVE_MASK_ATTENTION = ("sdpa", "eager")


def _restoring(library_forward):
    """The model's own forward; with dense outputs on (``tokens/dense.py``), the hidden states it
    returns are on the full patch grid: the last layer hands on the restored grid itself (so are
    ``last_hidden_state`` and the pooling), the others are replaced by their restored outputs."""

    @functools.wraps(library_forward)  # its signature, which transformers and torch.export read
    def forward(self, *args, **kwargs):
        dense = self._vp_ctx.dense
        if not dense.output or not kwargs.get("output_hidden_states", self.config.output_hidden_states):
            return super(type(self), self).forward(*args, **kwargs)
        as_tuple = not kwargs.get("return_dict", self.config.return_dict)
        dense.collect(range(dense.depth - 1))
        try:
            out = super(type(self), self).forward(*args, **{**kwargs, "return_dict": True})
        finally:  # a failed call must not leave later forwards recording
            taken = dense.collected()
        states = out.hidden_states
        inner = [None if h is None else taken[i] for i, h in enumerate(states[1:-1])]
        first = None if states[0] is None else dense.grid(states[0])  # the embeddings, resampled for resize
        out.hidden_states = (first, *inner, states[-1])
        return out.to_tuple() if as_tuple else out

    return forward


class HfEncoder(Family):
    """What the Hugging Face encoders share; subclasses name their classes and call their layers."""

    models: tuple[str, ...]  # model class names claimed (all in one transformers module)
    layer: str  # the encoder layer class the halves reproduce
    attn_name: str = "attention"

    def claims(self, model):
        cls = original_class(model)
        return cls.__module__.startswith("transformers.") and cls.__name__ in self.models

    def check(self, model):
        super().check(model)
        if not hasattr(self.attention(self.blocks(model)[0]), "q_proj"):
            raise UnsupportedModelError("Hugging Face encoders need transformers>=5 (q_proj/k_proj/v_proj)")
        impl = model.config._attn_implementation
        if impl not in ADDITIVE_MASK_ATTENTION:
            raise UnsupportedModelError(
                f"attn_implementation={impl!r} takes no additive float mask, which proportional "
                f"attention and padding need; load the model with attn_implementation='sdpa' or 'eager'"
            )
        if model.is_activation_checkpointing:
            raise UnsupportedModelError(
                "token methods do not support gradient checkpointing (recomputation would see later tokens)"
            )

    def block_classes(self, model):
        return (getattr(sys.modules[original_class(model).__module__], self.layer),)

    def swapped(self, model):
        """transformers looks up which layer outputs a model can record (``output_hidden_states``,
        ``output_attentions``) by the name of the model's class: register the patched class too, or a
        model that records them itself (``CLIPVisionModel``) returns None for both."""
        try:
            from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY
        except ImportError:  # transformers before the registry read the class attribute, which is inherited
            return
        _CAN_RECORD_REGISTRY[model] = getattr(model, "_can_record_outputs", None)

    def default_img_size(self, model):
        size = model.config.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def head_macs(self, model):
        base = set(model.base_model.modules())
        return linear_macs(m for m in model.modules() if m not in base)

    def attention(self, blk):
        return getattr(blk, self.attn_name)

    def overrides(self, model):
        return [(model, {"forward": _restoring(original_class(model).forward)})]

    def mlp(self, blk):
        return blk.mlp

    def projections(self, blk):
        attn = self.attention(blk)
        return (attn.q_proj, attn.k_proj, attn.v_proj)

    def any_grid(self, model, grid):
        """``interpolate_pos_encoding=True``: the embeddings resample their position table (bicubic)."""
        return AnyGrid(kwargs={"interpolate_pos_encoding": True})

    def view(self, blk, outputs, bias, state, extra):
        attn = self.attention(blk)
        b, n, _ = outputs[0].shape
        q, k, v = (o.view(b, n, -1, attn.head_dim).transpose(1, 2) for o in outputs)
        scale = attn.scaling if hasattr(attn, "scaling") else attn.scale
        return AttentionView.of_heads(q, k, v, scale, bias)


class HfVit(HfEncoder):
    supported = "transformers ViTModel / ViTForImageClassification (sdpa or eager attention)"
    models = ("ViTModel", "ViTForImageClassification")
    layer = "ViTLayer"

    def blocks(self, model):
        return model.base_model.layers

    def num_prefix(self, model):
        return 1

    def has_class_token(self, model):
        return True

    def patch_embed(self, model):
        return model.base_model.embeddings.patch_embeddings.projection

    def attend(self, blk, x, mask, state, extra):
        return x + blk.dropout(blk.attention(blk.layernorm_before(x), mask)[0])

    def feed(self, blk, x):
        return x + blk.dropout(blk.mlp(blk.layernorm_after(x)))


class HfDeit(HfVit):
    supported = (
        "transformers DeiTModel / DeiTForImageClassification(WithTeacher): class and distillation tokens"
    )
    models = ("DeiTModel", "DeiTForImageClassification", "DeiTForImageClassificationWithTeacher")
    layer = "DeiTLayer"

    def num_prefix(self, model):
        return 2


class HfDinov2Registers(HfEncoder):
    supported = "transformers Dinov2WithRegistersModel (LayerScale, register tokens)"
    models = ("Dinov2WithRegistersModel",)
    layer = "Dinov2WithRegistersLayer"

    def blocks(self, model):
        return model.base_model.encoder.layer

    def num_prefix(self, model):
        return 1 + model.config.num_register_tokens

    def has_class_token(self, model):
        return True

    def patch_embed(self, model):
        return model.base_model.embeddings.patch_embeddings.projection

    def any_grid(self, model, grid):
        return AnyGrid()  # its embeddings resample the position table for every input size

    def attend(self, blk, x, mask, state, extra):
        return x + blk.drop_path(blk.layer_scale1(blk.attention(blk.norm1(x), attention_mask=mask)[0]))

    def feed(self, blk, x):
        return x + blk.drop_path(blk.layer_scale2(blk.mlp(blk.norm2(x))))
