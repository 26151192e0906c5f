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


def embed_macs(spec: VitSpec, n_first: int | float):
    """MACs of the patch embedding for ``n_first`` tokens entering the first block: the patches the
    model really embedded (fewer than ``spec``'s when its input was resized to a smaller grid)."""
    return spec.embed_macs // spec.num_patches * (n_first - spec.num_prefix)


def schedule_macs(spec: VitSpec, counts: Sequence[tuple[int, int]]) -> float:
    """MACs of one image whose tokens follow ``counts`` (attention, MLP) per block."""
    blocks = sum(block_macs(b, n, m) for b, (n, m) in zip(spec.blocks, counts, strict=True))
    return embed_macs(spec, counts[0][0]) + blocks + spec.head_macs


def dense_schedule(spec: VitSpec) -> list[tuple[int, int]]:
    return [(spec.num_tokens, spec.num_tokens)] * spec.depth


def dense_macs(spec: VitSpec) -> float:
    return schedule_macs(spec, dense_schedule(spec))


def macs_target(value: float | str, dense: float) -> float:
    """A ``macs=`` target in MACs per image: a fraction of ``dense`` kept (0.63), or GMACs as a number
    above 1 or a string (``"2.9G"``, ``"2.9GMACs"``); the one meaning of ``macs=`` for every method."""
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("MACS").removesuffix("G")
        try:
            target = float(text) * 1e9
        except ValueError:
            raise ValueError(f"macs={value!r}: expected a fraction like 0.63 or GMACs like '2.9G'") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        target = value * dense if 0 < value <= 1 else value * 1e9
    else:
        raise ValueError(f"macs={value!r}: expected a fraction like 0.63 or GMACs like '2.9G'")
    if not 0 < target <= dense * (1 + 1e-9):
        raise ValueError(
            f"macs={value!r} is {target / 1e9:.3f} GMACs; allowed: above 0, at most dense "
            f"{dense / 1e9:.3f} GMACs"
        )
    return target


def out_of_reach(method: str, value: float | str, target: float, lo: float, hi: float, dense: float) -> str:
    """The message for a ``macs=`` target outside what ``method`` reaches on a model: the target and the
    reachable range in GMACs (4 significant digits: a target refused is over 2% outside, so the numbers
    differ) and as fractions of the ``dense`` model's MACs."""
    return (
        f"macs={value!r} ({target / 1e9:.4g} GMACs, {target / dense:.3f} of dense) is out of reach for "
        f"{method} on this model: it reaches {lo / 1e9:.4g}..{hi / 1e9:.4g} GMACs "
        f"({lo / dense:.3f}..{hi / dense:.3f} of dense)"
    )
