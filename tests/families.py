"""Tiny models of every supported family, random weights, built from configs (no download)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# CPU's fused attention kernel has no formula in FlopCounterMode; give it the fused-attention one.
CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa}

HF_SMALL = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32, patch_size=8)
TIMM_SMALL = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=10)
HF = ["hf-vit", "hf-deit", "hf-dinov2-reg", "hf-clip", "hf-siglip"]
TIMM = [
    "timm-siglip-map",
    "timm-eva02",
    "timm-vit-rope",
    "timm-vit-rope-mixed",
    "timm-beit",
    "timm-beit-shared",
]
NO_CLASS_TOKEN = {"hf-siglip", "timm-siglip-map"}


def _hf(name: str) -> nn.Module:
    tf = pytest.importorskip("transformers")
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
    return builders[name]()


def _timm(name: str) -> nn.Module:
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if name == "timm-siglip-map":
        return VisionTransformer(class_token=False, global_pool="map", **TIMM_SMALL)
    if name == "timm-beit-shared":
        return timm.create_model(
            "beit_base_patch16_224", use_rel_pos_bias=False, use_shared_rel_pos_bias=True, **TIMM_SMALL
        )
    zoo = {
        "timm-beit": "beit_base_patch16_224",
        "timm-eva02": "eva02_tiny_patch14_224",
        "timm-vit-rope": "vit_small_patch16_rope_224",
        "timm-vit-rope-mixed": "vit_small_patch16_rope_mixed_224",
    }
    return timm.create_model(zoo[name], pretrained=False, **TIMM_SMALL)


def build(name: str) -> nn.Module:
    """One model of a family of issue 19: 4 blocks of width 64 on 32×32 images, seed 0, eval mode."""
    torch.manual_seed(0)
    return (_hf(name) if name.startswith("hf-") else _timm(name)).eval()


def main_output(out) -> Tensor:
    """The tensor a user reads: timm's output, transformers' logits, else its pooled output."""
    if isinstance(out, Tensor):
        return out
    return out.logits if hasattr(out, "logits") else out.pooler_output


def flop_macs(model: nn.Module, x: Tensor) -> float:
    """MACs per image as torch's FlopCounterMode counts them (FLOPs / 2), CPU fused attention included."""
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:  # no_grad trips its tracker
        model(x)
    return counter.get_total_flops() / 2 / x.shape[0]
