"""Nonzero-aware parameter and MAC counts: zeros left by weight pruning count as saved.

DIMAP (He et al., ICLR 2024, §4.1) reports FLOPs "theoretically": a pruned weight is assumed to
cost nothing although the dense kernels still multiply by it. Counters such as fvcore or
Torch-Pruning's ignore zeros and would report the dense cost, so these functions count them.
Convention (as everywhere in vitprune): one multiply-accumulate per weight per token a Linear
sees; bias additions are not counted. Only ``nn.Linear`` weights are made nonzero-aware.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitprune.data.transforms import resolve_input_size
from vitprune.measure.macs import macs as dense_macs
from vitprune.models.device import model_device


def example_images(model: nn.Module, batch: int = 1) -> Tensor:
    """One zero batch at the input size the model was built for (token counts need no real data)."""
    return torch.zeros(batch, *resolve_input_size(model), device=model_device(model))


@torch.inference_mode()
def linear_tokens(model: nn.Module, images: Tensor) -> dict[str, float]:
    """Tokens per image that each ``nn.Linear`` of ``model`` processes, from one forward pass.

    A forward hook reads each Linear's input: its rows (all dimensions but the last) divided by
    the batch size. Swin's windowed attention sees every token of its stage once per block.
    """
    seen: dict[str, float] = {}
    batch = images.shape[0]

    def hook(name):
        def record(_module, inputs, _output):
            x = inputs[0]
            seen[name] = seen.get(name, 0.0) + x.numel() / x.shape[-1] / batch

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def nonzero_params(model: nn.Module) -> int:
    """Number of nonzero entries over all parameters (shared parameters counted once)."""
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())


def zero_macs(model: nn.Module, tokens: dict[str, float]) -> float:
    """MACs per image spent on zero Linear weights: zeros × tokens seen, summed over Linears."""
    return sum(
        tokens[name] * (m.weight.numel() - int(torch.count_nonzero(m.weight.detach())))
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name in tokens
    )


def nonzero_macs(model: nn.Module, images: Tensor) -> float:
    """Theoretical MACs per image: the dense count minus one MAC per zero Linear weight per token.

    The dense count comes from :func:`vitprune.measure.macs.macs` (analytic for ViT, operator-level
    for other models such as Swin). "Theoretical": dense kernels still spend the time on zeros.
    """
    return dense_macs(model, images).mean - zero_macs(model, linear_tokens(model, images))
