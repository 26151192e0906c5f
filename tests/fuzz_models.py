"""Random tiny timm ViTs for property tests: every supported family, drawn by hypothesis.

``family`` is timm's VisionTransformer ("vit"), EVA-02 ("eva02": RoPE, SwiGLU, q/v biases), a RoPE
ViT ("rope"), or BEiT ("beit": relative position bias, q/v biases); the last three have a class
token, no registers and no qk-norm as timm builds them."""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from conftest import randomize_scales
from hypothesis import strategies as st

PREFIX_TOKENS = {"cls": 1, "distilled": 2, "none": 0}
PREFIX_DRAWS = ("cls", "cls", "cls", "distilled", "none")  # most methods need the class token
POOLS = {"cls": ("token", "avg", "max"), "distilled": ("token",), "none": ("avg", "max")}
FAMILIES = {
    "eva02": "eva02_tiny_patch14_224",
    "rope": "vit_small_patch16_rope_224",
    "beit": "beit_base_patch16_224",
}
FAMILY_DRAWS = ("vit", "vit", "vit", "vit", "eva02", "rope", "beit")
FAMILY_POOLS = {"eva02": ("token", "avg", "max"), "rope": ("token", "avg", "max"), "beit": ("token", "avg")}


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

    def images(self, batch: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, self.in_chans, *self.img_size, generator=g).to(dtype)


@st.composite
def vit_configs(
    draw, prefixes: tuple[str, ...] = PREFIX_DRAWS, max_depth: int = 12, families: tuple[str, ...] = ("vit",)
) -> VitConfig:
    family = draw(st.sampled_from(families)) if "cls" in prefixes else "vit"
    prefix = "cls" if family != "vit" else draw(st.sampled_from(prefixes))
    embed_dim = draw(st.sampled_from([24, 32, 48, 64]))
    heads = draw(st.sampled_from([h for h in (1, 2, 3, 4) if embed_dim % h == 0 and embed_dim // h >= 8]))
    return VitConfig(
        depth=draw(st.integers(2, max_depth)),
        embed_dim=embed_dim,
        heads=heads,
        patch=draw(st.sampled_from([4, 8, 16])),
        grid=(draw(st.integers(1, 8)), draw(st.integers(1, 8))),
        prefix=prefix,
        reg_tokens=0 if prefix == "distilled" or family != "vit" else draw(st.integers(0, 4)),
        global_pool=draw(st.sampled_from(FAMILY_POOLS.get(family, POOLS[prefix]))),
        init_values=draw(st.none() | st.just(1e-5)),
        qk_norm=family == "vit" and draw(st.booleans()),
        no_embed_class=family == "vit" and prefix != "distilled" and draw(st.booleans()),  # distilled breaks
        in_chans=draw(st.sampled_from([1, 3])),
        num_classes=draw(st.integers(2, 12)),
        sharpen=draw(st.sampled_from([1.0, 4.0])),
        seed=draw(st.integers(0, 2**16)),
        family=family,
    )
