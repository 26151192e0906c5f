"""Top-K baseline: keep the patches the class token attends to most, fuse nothing — certain.

Haurum et al. 2023 ("Which Tokens to Use? Investigating Token Reduction in Vision Transformers")
found top-K pruning a surprisingly strong baseline across ten methods. Here it is EViT (Liang et al.
2022) without its fused token: the same blocks (default 3, 6, 9 of 12), the same ceil(keep ·
patches) kept by CLS attention (mean over heads), the rest dropped.
"""

from __future__ import annotations

from vitprune.methods.base import check_options, register, require_class_token
from vitprune.methods.evit import EViT, solve_rates
from vitprune.vit import VitSpec


class TopK(EViT):
    name = "topk"
    summary = "top-K baseline (Haurum et al. 2023): keep the top patches by CLS attention, fuse nothing"

    def __init__(self, rates: dict[int, float]):
        super().__init__(rates, fuse=False)


@register(TopK.name, TopK.summary, baseline=True)
def build(spec: VitSpec, **config) -> TopK:
    check_options("topk", config, ("keep", "layers", "macs"), knob="keep")
    require_class_token("topk", spec)
    return TopK(solve_rates("topk", spec, config, fuse=False))
