"""Count MACs from the real token counts of a forward pass, per image where counts differ."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from vitprune.measure.formula import block_macs, dense_macs
from vitprune.tokens import patch as token_patch
from vitprune.vit import UnsupportedModelError, check_supported, describe


@dataclass
class MacsReport:
    per_image: Tensor  # [B] MACs of each image
    dense: float  # MACs of the unpatched model at the same input size
    per_block: list[float]  # mean MACs of each block

    @property
    def mean(self) -> float:
        return float(self.per_image.mean())

    @property
    def ratio(self) -> float:
        return self.mean / self.dense

    def as_dict(self) -> dict:
        return {
            "gmacs": self.mean / 1e9,
            "dense_gmacs": self.dense / 1e9,
            "ratio": self.ratio,
            "per_block_gmacs": [m / 1e9 for m in self.per_block],
        }


@torch.inference_mode()
def macs(model: nn.Module, images: Tensor) -> MacsReport:
    """MACs per image of ``model`` on ``images`` ([B, C, H, W]), from the token counts it really used.

    A patched model is run once and each block's token counts are read per image; an unpatched one
    is counted from its static shape. Conventions: see ``vitprune.measure.formula``. Models outside
    the ViT family (e.g. Swin) are counted by running them under torch's ``FlopCounterMode``.
    """
    try:
        check_supported(model)
    except UnsupportedModelError:
        return _counted(model, images)
    spec = describe(model, tuple(images.shape[-2:]))
    b = images.shape[0]
    if token_patch.is_patched(model):
        with model.vitprune.recording() as counts:
            model(images)
    else:
        n = torch.full((b,), spec.num_tokens)
        counts = [token_patch.BlockCount(n, n)] * spec.depth
    per_block = [
        block_macs(blk, c.attention.double().cpu(), c.mlp.double().cpu())
        for blk, c in zip(spec.blocks, counts, strict=True)
    ]
    per_image = spec.embed_macs + spec.head_macs + torch.stack(per_block).sum(0)
    return MacsReport(
        per_image=per_image, dense=dense_macs(spec), per_block=[float(m.mean()) for m in per_block]
    )


def _counted(model: nn.Module, images: Tensor) -> MacsReport:
    """Dense MACs per image from torch's operator-level counter (FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter:
        model(images)
    per_image = counter.get_total_flops() / 2 / images.shape[0]
    return MacsReport(
        per_image=torch.full((images.shape[0],), float(per_image)), dense=per_image, per_block=[]
    )
