"""Physically shrink timm attention and MLP blocks to a subset of heads / hidden units.

Used by the structured variant of DIMAP (our extension of He et al., ICLR 2024, which only
masks single weights). Supported blocks, checked by type so that nothing is silently wrong:

* timm ``Attention`` (ViT/DeiT): qkv rows and proj columns of the kept heads; ``num_heads`` and
  ``attn_dim`` updated (``head_dim`` and ``scale`` do not change when whole heads go).
* timm Swin ``WindowAttention``: the same, plus the kept columns of
  ``relative_position_bias_table`` ([(2W-1)², heads]).
* timm ``Mlp``: fc1 rows (and bias) and fc2 columns of the kept hidden units.
"""

from __future__ import annotations

import torch
from timm.layers import Attention, Mlp
from timm.models.swin_transformer import WindowAttention
from torch import Tensor, nn

HEAD_BLOCKS = (Attention, WindowAttention)


def check_attention(attn: nn.Module, name: str) -> None:
    """``ValueError`` unless ``attn`` is an attention block whose heads :func:`keep_heads` can cut."""
    if not isinstance(attn, HEAD_BLOCKS):
        raise ValueError(
            f"{name}: head pruning supports timm Attention and Swin WindowAttention, not {type(attn)}"
        )
    extra = [
        part
        for part in ("norm", "gate")
        if getattr(attn, part, None) is not None and not isinstance(getattr(attn, part), nn.Identity)
    ]
    if extra:
        raise ValueError(f"{name}: head pruning does not support an attention with {', '.join(extra)}")


def check_mlp(mlp: nn.Module, name: str) -> None:
    """``ValueError`` unless ``mlp`` is a plain timm ``Mlp`` (no norm on the hidden units)."""
    if type(mlp) is not Mlp or not isinstance(mlp.norm, nn.Identity):
        raise ValueError(f"{name}: neuron pruning supports timm Mlp without a hidden norm, not {type(mlp)}")


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """A Linear holding copies of ``weight`` [out, in] and ``bias``."""
    out_features, in_features = weight.shape
    layer = nn.Linear(
        in_features, out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    layer.weight.copy_(weight)
    if bias is not None:
        layer.bias.copy_(bias)
    return layer


@torch.no_grad()
def keep_heads(attn: nn.Module, heads: Tensor, name: str = "attention") -> None:
    """Keep only ``heads`` (sorted head indices) of ``attn``, in place."""
    check_attention(attn, name)
    heads = heads.to(attn.qkv.weight.device)
    total = attn.num_heads
    head_dim = attn.qkv.out_features // (3 * total)
    rows = (torch.arange(3, device=heads.device)[:, None, None] * total + heads[None, :, None]) * head_dim
    rows = (rows + torch.arange(head_dim, device=heads.device)).reshape(-1)
    cols = (heads[:, None] * head_dim + torch.arange(head_dim, device=heads.device)).reshape(-1)
    qkv, proj = attn.qkv, attn.proj
    attn.qkv = _linear(qkv.weight[rows], qkv.bias[rows] if qkv.bias is not None else None)
    attn.proj = _linear(proj.weight[:, cols], proj.bias)
    attn.num_heads = int(heads.numel())
    if hasattr(attn, "attn_dim"):
        attn.attn_dim = attn.num_heads * head_dim
    if hasattr(attn, "relative_position_bias_table"):
        table = attn.relative_position_bias_table
        attn.relative_position_bias_table = nn.Parameter(
            table[:, heads].clone(), requires_grad=table.requires_grad
        )


@torch.no_grad()
def keep_neurons(mlp: nn.Module, units: Tensor, name: str = "mlp") -> None:
    """Keep only hidden ``units`` (sorted indices) of ``mlp``, in place."""
    check_mlp(mlp, name)
    units = units.to(mlp.fc1.weight.device)
    fc1, fc2 = mlp.fc1, mlp.fc2
    mlp.fc1 = _linear(fc1.weight[units], fc1.bias[units] if fc1.bias is not None else None)
    mlp.fc2 = _linear(fc2.weight[:, units], fc2.bias)


def apply_structure(model: nn.Module, sizes: dict[str, dict[str, int]]) -> nn.Module:
    """Shrink a stock model to recorded sizes: ``{block: {"num_heads": n} | {"hidden": n}}``.

    The first n heads/units are kept; their values are meant to be overwritten by loading the
    shrunk state_dict (see :func:`vitprune.weights.io.load_shrunk`).
    """
    blocks = dict(model.named_modules())
    for name, size in sizes.items():
        if name not in blocks:
            raise ValueError(f"structure names {name!r}, which {type(model).__name__} does not have")
        if "num_heads" in size:
            keep_heads(blocks[name], torch.arange(int(size["num_heads"])), name)
        elif "hidden" in size:
            keep_neurons(blocks[name], torch.arange(int(size["hidden"])), name)
        else:
            raise ValueError(f"structure entry {name!r}: expected num_heads or hidden, got {sorted(size)}")
    return model
