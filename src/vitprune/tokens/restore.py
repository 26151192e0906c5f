"""The full token grid back from the tokens a method left: one feature per original token.

Each original token (prefix first, then patches in raster order) takes the value of the real token
that holds it (``TokenState.source``): a kept token gives its own value, a merged or pooled token
(ToMe, PPT's pooling) gives its value to every patch merged into it. EViT's fused token (position
-1) stands for no place on the grid and gives its value to nobody, and padding is never read. A
patch no real token holds was dropped: it keeps the value it had when it was dropped, carried to the
output (SViT, Liu et al., arXiv 2306.07050; DToP, Tang et al., ICCV 2023). Pure functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vitprune.tokens.state import TokenState, gather_tokens


def fill(x: Tensor, state: TokenState, carried: Tensor | None = None) -> Tensor:
    """``x`` ([B, N, C], the tokens ``state`` describes) on the original grid ``[B, N0, C]``; a token no
    real token holds takes its row of ``carried`` ([B, N0, C]; None: every token is held)."""
    real = state.pos >= 0  # EViT's fused token (-1) has no place on the grid
    if state.valid is not None:
        real = real & state.valid
    held = state.source & real[..., None]  # [B, N, N0]; at most one real token holds an original one
    any_holder, holder = held.to(torch.uint8).max(1)  # the holder's index; 0 (unread) where none
    out = gather_tokens(x, holder)
    if carried is None:
        return out
    return torch.where(any_holder.bool()[..., None], out, carried)


def resample(x: Tensor, num_prefix: int, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """``x`` ([B, prefix + h·w, C], patches on ``grid`` (h, w)) with its patches bilinearly interpolated
    to ``size`` (the ``resize`` baseline's features on the input's own grid); prefix tokens unchanged."""
    if tuple(grid) == tuple(size):
        return x
    b, _, c = x.shape
    patches = x[:, num_prefix:].transpose(1, 2).reshape(b, c, *grid)
    patches = F.interpolate(patches, size=size, mode="bilinear", align_corners=False)
    return torch.cat([x[:, :num_prefix], patches.flatten(2).transpose(1, 2)], 1)
