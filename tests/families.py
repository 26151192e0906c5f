"""Tiny models of every supported family, random weights, built from configs (no download)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# CPU's fused attention kernel has no formula in FlopCounterMode; give it the fused-attention one.
CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa}

HF_SMALL = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32, patch_size=8)


def hf_model(name: str) -> nn.Module:
    """One of the Hugging Face encoders of issue 19, 4 blocks of width 64 on 32×32 images."""
    import transformers as tf

    torch.manual_seed(0)
    builders = {
        "hf-vit": lambda: tf.ViTForImageClassification(
            tf.ViTConfig(intermediate_size=128, num_labels=10, **HF_SMALL)
        ),
        "hf-deit": lambda: tf.DeiTForImageClassificationWithTeacher(
            tf.DeiTConfig(intermediate_size=128, num_labels=10, **HF_SMALL)
        ),
        "hf-dinov2-reg": lambda: tf.Dinov2WithRegistersModel(
            tf.Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=2, layerscale_value=0.5, **HF_SMALL)
        ),
        "hf-clip": lambda: tf.CLIPVisionModel(tf.CLIPVisionConfig(intermediate_size=128, **HF_SMALL)),
        "hf-siglip": lambda: tf.SiglipVisionModel(tf.SiglipVisionConfig(intermediate_size=128, **HF_SMALL)),
    }
    return builders[name]().eval()


def main_output(out) -> Tensor:
    """The tensor a user reads: logits, else the pooled output."""
    return out.logits if hasattr(out, "logits") else out.pooler_output


def flop_macs(model: nn.Module, x: Tensor) -> float:
    """MACs per image as torch's FlopCounterMode counts them (FLOPs / 2), CPU fused attention included."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        model(x)
    return counter.get_total_flops() / 2 / x.shape[0]
