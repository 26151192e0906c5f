"""Count MACs from the real token counts of forward passes, per image where counts differ.

Input-adaptive methods (``method.per_image_counts``) keep a different number of tokens per image and
pad each batch to its longest image. Two figures are then true: the *useful* MACs of each image's own
tokens (``per_image``) and the *executed* MACs, padding included, which depend on the batch
(``executed``). Both come from the forwards really run, so they are means over the images measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import vitprune.tokens.patch as token_patch
from vitprune.measure.formula import block_macs, dense_macs, embed_macs
from vitprune.vit import UnsupportedModelError, check_supported, describe


@dataclass
class MacsReport:
    per_image: Tensor  # [B] useful MACs of each image (its own tokens)
    dense: float  # MACs of the unpatched model at the same input size
    per_block: list[float]  # mean useful MACs of each block
    executed: Tensor  # [B] MACs each image's batch really ran, per image (padding included)

    @property
    def mean(self) -> float:
        return float(self.per_image.mean())

    @property
    def executed_mean(self) -> float:
        return float(self.executed.mean())

    @property
    def ratio(self) -> float:
        return self.mean / self.dense

    def as_dict(self) -> dict:
        return {
            "gmacs": self.mean / 1e9,
            "executed_gmacs": self.executed_mean / 1e9,
            "dense_gmacs": self.dense / 1e9,
            "ratio": self.ratio,
            "images": self.per_image.numel(),
            "per_block_gmacs": [m / 1e9 for m in self.per_block],
        }


@dataclass
class Meter:
    """What :func:`metered` records: the input shape of every forward and each block's token counts."""

    model: nn.Module
    shapes: list[torch.Size] = field(default_factory=list)
    counts: list | None = None

    def report(self) -> MacsReport:
        """MACs per image over every image of every forward run while metering."""
        if not self.shapes:
            raise ValueError("no forward pass was metered: no images, no MACs")
        try:
            check_supported(self.model)
        except UnsupportedModelError:
            return _counted(self.model, self.shapes)
        spec = describe(self.model, tuple(self.shapes[0][-2:]))
        useful, executed, embedded = [], [], []
        for i, shape in enumerate(self.shapes):
            if self.counts is None:
                n = torch.full((shape[0],), spec.num_tokens)
                counts = [token_patch.BlockCount(n, n)] * spec.depth
            else:
                counts = self.counts[i * spec.depth : (i + 1) * spec.depth]
            useful.append(_block_macs(spec, counts, padded=False))
            executed.append(_block_macs(spec, counts, padded=True))
            embedded.append(embed_macs(spec, counts[0].attention.double().cpu()))
        per_block = torch.cat(useful, dim=1)
        base = torch.cat(embedded) + spec.head_macs  # the patches really embedded (a resized input: fewer)
        return MacsReport(
            per_image=base + per_block.sum(0),
            dense=dense_macs(spec),
            per_block=[float(m) for m in per_block.mean(1)],
            executed=base + torch.cat(executed, dim=1).sum(0),
        )


def _block_macs(spec, counts, padded: bool) -> Tensor:
    """[depth, B] MACs of each block for each image of one batch; ``padded`` charges the batch maximum."""
    rows = []
    for blk, c in zip(spec.blocks, counts, strict=True):
        attn, mlp = c.attention.double().cpu(), c.mlp.double().cpu()
        if padded:
            attn, mlp = torch.full_like(attn, float(attn.max())), torch.full_like(mlp, float(mlp.max()))
        rows.append(block_macs(blk, attn, mlp))
    return torch.stack(rows)


@contextmanager
def metered(model: nn.Module) -> Iterator[Meter]:
    """Record the forwards run inside; ``meter.report()`` then gives their MACs per image.

    Wrap an evaluation in it to charge exactly the images evaluated::

        with metered(model) as meter:
            evaluate(model, loader)
        meter.report().mean
    """
    meter = Meter(model)
    handle = model.register_forward_pre_hook(lambda _m, args: meter.shapes.append(args[0].shape))
    recording = model.vitprune.recording() if token_patch.is_patched(model) else nullcontext()
    try:
        with recording as counts:
            meter.counts = counts
            yield meter
    finally:
        handle.remove()


@torch.inference_mode()
def macs(model: nn.Module, images: Tensor) -> MacsReport:
    """MACs per image of ``model`` on ``images`` ([B, C, H, W]), from the token counts it really used.

    A patched model is run once and each block's token counts are read per image; an unpatched one
    is counted from its static shape. Conventions: see ``vitprune.measure.formula``. Models outside
    the ViT family (e.g. Swin) are counted by running them under torch's ``FlopCounterMode``.
    """
    with metered(model) as meter:
        model(images)
    return meter.report()


@torch.inference_mode()
def _counted(model: nn.Module, shapes: list[torch.Size]) -> MacsReport:
    """Dense MACs per image from torch's operator-level counter (FLOPs / 2) on one zero image."""
    image = torch.zeros(1, *shapes[0][1:], device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(image)
    per_image = counter.get_total_flops() / 2
    n = sum(shape[0] for shape in shapes)
    flat = torch.full((n,), float(per_image))
    return MacsReport(per_image=flat, dense=per_image, per_block=[], executed=flat)
