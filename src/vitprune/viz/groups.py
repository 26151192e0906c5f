"""Which token each original patch ended up in: the group map behind a token visualisation."""

from __future__ import annotations

import torch
from torch import Tensor

from vitprune.tokens.state import TokenState

DROPPED = -1


def patch_groups(state: TokenState) -> Tensor:
    """Group of every original patch, ``[B, patches]`` (long).

    A patch's group is the index of the (real, non-padding) token that contains it; patches sharing
    a group were merged into one token. A patch that no real token contains was dropped and gets
    ``DROPPED`` (-1), never group 0. Needs the source map (``vitprune.apply(..., trace_source=True)``).
    """
    if state.source is None:
        raise ValueError("token maps need the source map: apply the method with trace_source=True")
    source = state.source[:, :, state.num_prefix :]
    if state.valid is not None:
        source = source & state.valid[..., None]
    contained = source.any(1)
    groups = source.to(torch.uint8).argmax(1)
    return groups.masked_fill(~contained, DROPPED)


def fused_patches(state: TokenState, groups: Tensor) -> Tensor:
    """``[B, patches]`` True for patches held by a fused token (position -1, e.g. EViT's)."""
    pos = state.pos.gather(1, groups.clamp_min(0))
    return (groups != DROPPED) & (pos == -1)
