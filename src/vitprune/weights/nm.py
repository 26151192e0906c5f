"""N:M semi-structured masks chosen by the DIMAP score, for GPU sparse kernels.

Beyond the paper. DIMAP (He et al., ICLR 2024) masks arbitrary weights, which no mainstream
kernel accelerates. NVIDIA's 2:4 pattern (at most 2 nonzeros in every group of 4 consecutive
input weights of a row) is accelerated by ``torch.sparse.to_sparse_semi_structured`` on CUDA
(compute capability ≥ 8.0, fp16/bf16). Here, inside each group, the N weights with the highest
DIMAP score are kept; inside one layer that is the N largest |w|, ties going to the earlier one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitprune.weights.modules import MODULES, layers
from vitprune.weights.scores import weight_scores

PATTERNS = {"2:4": (2, 4)}


def parse_pattern(pattern: str) -> tuple[int, int]:
    """``"2:4"`` → ``(2, 4)``; ``ValueError`` naming the supported patterns otherwise."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; supported: {', '.join(PATTERNS)}")
    return PATTERNS[pattern]


def nm_mask(weight: Tensor, n: int, m: int) -> Tensor:
    """Keep-mask of a [out, in] weight keeping the n best-scored of every m consecutive inputs."""
    out_features, in_features = weight.shape
    if in_features % m:
        raise ValueError(f"{n}:{m} needs in_features divisible by {m}, got {in_features}")
    scores = weight_scores(weight).view(out_features, in_features // m, m)
    best = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :n]
    mask = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, best, True)
    return mask.view(out_features, in_features)


@torch.no_grad()
def nm_masks(model: nn.Module, pattern: str = "2:4", modules=MODULES) -> dict[str, Tensor]:
    """N:M keep-masks for every prunable layer, keyed by weight name (see :func:`dimap_masks`)."""
    n, m = parse_pattern(pattern)
    return {layer.param: nm_mask(layer.linear.weight, n, m) for layer in layers(model, modules)}


def to_semi_structured(model: nn.Module, masks: dict[str, Tensor]) -> list[str]:
    """Swap each masked Linear weight for PyTorch's 2:4 sparse format; returns the converted names.

    Needs CUDA and a half-precision model already on the GPU, with 2:4 masks applied. Layers the
    kernel cannot take (e.g. too small) are left dense.
    """
    from torch.sparse import to_sparse_semi_structured

    converted = []
    modules = dict(model.named_modules())
    for param in masks:
        linear = modules[param.removesuffix(".weight")]
        try:
            sparse = to_sparse_semi_structured(linear.weight.detach())
        except (RuntimeError, ValueError):
            continue
        linear.weight = nn.Parameter(sparse, requires_grad=False)
        converted.append(param)
    return converted
