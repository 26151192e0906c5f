"""Average cosine similarity (ACS) of the patch tokens entering each block (STAR's rate metric).

For each block, the patch tokens after its first norm (the attention's input, as in the authors'
notebook) are L2-normalised and their mean pairwise cosine similarity is taken with the diagonal
excluded: (‖Σᵢ x̂ᵢ‖² − P) / (P(P−1)), O(P·D) instead of the P×P matrix. Averaged over images.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vitprune.api import remove


def mean_pairwise_cosine(tokens: Tensor) -> Tensor:
    """``[B, P, D]`` → ``[B]``: mean cosine similarity over all ordered pairs i ≠ j."""
    x = torch.nn.functional.normalize(tokens.double(), dim=-1)
    p = x.shape[1]
    return (x.sum(1).pow(2).sum(-1) - p) / (p * (p - 1))


@torch.inference_mode()
def layer_acs(model: nn.Module, images: Tensor, batch_size: int = 32) -> Tensor:
    """ACS of every block, ``[L]`` (float64), averaged over ``images``, on the unpatched model."""
    model = remove(copy.deepcopy(model)).eval()
    prefix = model.num_prefix_tokens
    sums = torch.zeros(len(model.blocks), dtype=torch.float64)
    current: list[Tensor] = []
    hooks = [
        blk.norm1.register_forward_hook(
            lambda m, i, out: current.append(mean_pairwise_cosine(out[:, prefix:]))
        )
        for blk in model.blocks
    ]
    try:
        for start in range(0, len(images), batch_size):
            current.clear()
            model(images[start : start + batch_size])
            sums += torch.stack([c.sum() for c in current]).cpu()
    finally:
        for h in hooks:
            h.remove()
    return sums / len(images)
