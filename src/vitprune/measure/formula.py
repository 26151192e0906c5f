"""The analytic MAC count of a ViT from its token counts (MACs, the papers' "GFLOPs").

Per block with N tokens into attention and N' into the MLP:
  attention  N·(qkv + proj MACs per token) + 2·N²·attn_dim   (Q·Kᵀ and A·V)
  MLP        N'·(fc1 + fc2 MACs per token)
plus the patch embedding and the classifier head(s). Norms, softmax, residual adds and the methods'
own scoring/matching are not counted (the convention of the DeiT, ToMe, EViT and PPT tables).
"""

from __future__ import annotations

from collections.abc import Sequence

from vitprune.vit import BlockSpec, VitSpec


def block_macs(block: BlockSpec, n_attn: int | float, n_mlp: int | float) -> float:
    return n_attn * block.attn_linear + 2 * n_attn * n_attn * block.attn_dim + n_mlp * block.mlp_linear


def schedule_macs(spec: VitSpec, counts: Sequence[tuple[int, int]]) -> float:
    """MACs of one image whose tokens follow ``counts`` (attention, MLP) per block."""
    blocks = sum(block_macs(b, n, m) for b, (n, m) in zip(spec.blocks, counts, strict=True))
    return spec.embed_macs + blocks + spec.head_macs


def dense_schedule(spec: VitSpec) -> list[tuple[int, int]]:
    return [(spec.num_tokens, spec.num_tokens)] * spec.depth


def dense_macs(spec: VitSpec) -> float:
    return schedule_macs(spec, dense_schedule(spec))
