"""Random tiny ViTs for property tests: every supported family, drawn by hypothesis.

``family`` is timm's VisionTransformer ("vit", with SigLIP's attention-pool head among its pools),
EVA-02 ("eva02": RoPE, SwiGLU, q/v biases), a RoPE ViT ("rope"), BEiT ("beit": relative position
bias, q/v biases), or a Hugging Face transformers model built from a config ("hf-vit", "hf-deit"
with its distillation token, "hf-dinov2" with 0-4 registers and LayerScale, "hf-clip", "hf-siglip"
with no class token and its attention-pool head). Families other than "vit" have no qk-norm, and
only DINOv2 has registers; Hugging Face models take square images."""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from conftest import randomize_scales
from hypothesis import strategies as st

PREFIX_TOKENS = {"cls": 1, "distilled": 2, "none": 0}
PREFIX_DRAWS = ("cls", "cls", "cls", "distilled", "none")  # most methods need the class token
POOLS = {"cls": ("token", "avg", "max", "map"), "distilled": ("token",), "none": ("avg", "max", "map")}
FAMILIES = {
    "eva02": "eva02_tiny_patch14_224",
    "rope": "vit_small_patch16_rope_224",
    "beit": "beit_base_patch16_224",
}
HF_FAMILIES = ("hf-vit", "hf-deit", "hf-dinov2", "hf-clip", "hf-siglip")
FAMILY_DRAWS = ("vit", "vit", "vit", "vit", "eva02", "rope", "beit", *HF_FAMILIES)
FAMILY_POOLS = {"eva02": ("token", "avg", "max"), "rope": ("token", "avg", "max"), "beit": ("token", "avg")}
FAMILY_PREFIX = {"hf-deit": "distilled", "hf-siglip": "none"}  # the others: a class token
HF_POOL = {"hf-siglip": "map"}  # what the model pools with (not a choice); the others read the class token
HF_ATTENTION = ("query", "key", "value", "q_proj", "k_proj", "v_proj")


@dataclass(frozen=True)
class VitConfig:
    """One ViT; ``prefix``: "cls", "distilled" (DeiT's extra token and head) or "none" (class_token=False)."""

    depth: int
    embed_dim: int
    heads: int
    patch: int
    grid: tuple[int, int]
    prefix: str
    reg_tokens: int
    global_pool: str
    init_values: float | None
    qk_norm: bool
    no_embed_class: bool
    in_chans: int
    num_classes: int
    sharpen: float  # qkv weights are scaled by this: sharper attention, images that differ more
    seed: int
    family: str = "vit"

    @property
    def img_size(self) -> tuple[int, int]:
        return self.grid[0] * self.patch, self.grid[1] * self.patch

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_prefix(self) -> int:
        return PREFIX_TOKENS[self.prefix] + self.reg_tokens

    def build(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The model in eval mode, its random weights fixed by ``seed``."""
        kwargs = dict(
            img_size=self.img_size,
            patch_size=self.patch,
            depth=self.depth,
            embed_dim=self.embed_dim,
            num_heads=self.heads,
            num_classes=self.num_classes,
            in_chans=self.in_chans,
            global_pool=self.global_pool,
            init_values=self.init_values,
            qk_norm=self.qk_norm,
            no_embed_class=self.no_embed_class,
        )
        if self.family.startswith("hf-"):
            return self._hf().to(dtype)
        name = "vit_tiny_patch16_224"
        if self.family != "vit":
            name = FAMILIES[self.family]
            for key in ("qk_norm", "no_embed_class"):
                del kwargs[key]
        elif self.prefix == "distilled":
            name = "deit_tiny_distilled_patch16_224"  # timm ignores reg_tokens here
        else:
            kwargs.update(reg_tokens=self.reg_tokens, class_token=self.prefix == "cls")
        torch.manual_seed(self.seed)
        model = randomize_scales(timm.create_model(name, **kwargs).eval())
        with torch.no_grad():
            for block in model.blocks:
                block.attn.qkv.weight.mul_(self.sharpen)
        return model.to(dtype)

    def _hf(self) -> torch.nn.Module:
        """The Hugging Face model, random weights fixed by ``seed``, q/k/v sharpened as timm's qkv."""
        import transformers as tf

        size = dict(
            hidden_size=self.embed_dim,
            num_hidden_layers=self.depth,
            num_attention_heads=self.heads,
            image_size=self.img_size[0],
            patch_size=self.patch,
            num_channels=self.in_chans,
        )
        mlp = dict(intermediate_size=2 * self.embed_dim)
        head = dict(num_labels=self.num_classes)
        build = {
            "hf-vit": lambda: tf.ViTForImageClassification(tf.ViTConfig(**size, **mlp, **head)),
            "hf-deit": lambda: tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(**size, **mlp, **head)),
            "hf-dinov2": lambda: tf.Dinov2WithRegistersModel(
                tf.Dinov2WithRegistersConfig(
                    **size,
                    mlp_ratio=2,
                    num_register_tokens=self.reg_tokens,
                    layerscale_value=self.init_values or 1.0,
                )
            ),
            "hf-clip": lambda: tf.CLIPVisionModel(tf.CLIPVisionConfig(**size, **mlp)),
            "hf-siglip": lambda: tf.SiglipVisionModel(tf.SiglipVisionConfig(**size, **mlp)),
        }[self.family]
        torch.manual_seed(self.seed)
        model = randomize_scales(build().eval())
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if name.endswith(tuple(f"{part}.weight" for part in HF_ATTENTION)):
                    weight.mul_(self.sharpen)
        return model

    def images(self, batch: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, self.in_chans, *self.img_size, generator=g).to(dtype)


@st.composite
def vit_configs(
    draw, prefixes: tuple[str, ...] = PREFIX_DRAWS, max_depth: int = 12, families: tuple[str, ...] = ("vit",)
) -> VitConfig:
    allowed = [f for f in families if f == "vit" or FAMILY_PREFIX.get(f, "cls") in prefixes]
    family = draw(st.sampled_from(allowed))
    prefix = draw(st.sampled_from(prefixes)) if family == "vit" else FAMILY_PREFIX.get(family, "cls")
    embed_dim = draw(st.sampled_from([24, 32, 48, 64]))
    heads = draw(st.sampled_from([h for h in (1, 2, 3, 4) if embed_dim % h == 0 and embed_dim // h >= 8]))
    side = draw(st.integers(1, 8))
    hf = family.startswith("hf-")
    if hf:
        pool = HF_POOL.get(family, "token")
    else:
        pool = draw(st.sampled_from(FAMILY_POOLS.get(family, POOLS[prefix])))
    return VitConfig(
        depth=draw(st.integers(2, max_depth)),
        embed_dim=embed_dim,
        heads=heads,
        patch=draw(st.sampled_from([4, 8, 16])),
        grid=(side, side) if hf else (side, draw(st.integers(1, 8))),
        prefix=prefix,
        reg_tokens=draw(st.integers(0, 4)) if family in ("vit", "hf-dinov2") and prefix != "distilled" else 0,
        global_pool=pool,
        init_values=draw(st.none() | st.just(1e-5)),
        qk_norm=family == "vit" and draw(st.booleans()),
        no_embed_class=family == "vit" and prefix != "distilled" and draw(st.booleans()),  # distilled breaks
        in_chans=draw(st.sampled_from([1, 3])),
        num_classes=draw(st.integers(2, 12)),
        sharpen=draw(st.sampled_from([1.0, 4.0])),
        seed=draw(st.integers(0, 2**16)),
        family=family,
    )
