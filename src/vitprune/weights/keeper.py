"""Fine-tuning with fixed masks: pruned weights stay exactly zero through training.

DIMAP (He et al., ICLR 2024, §4.1) fine-tunes the pruned Swin with AdamW; the paper does not say
how the masks are enforced. Two mechanisms, both on by default:

* a gradient hook multiplies each masked weight's gradient by its mask, so AdamW's moments of a
  pruned weight stay zero and its update is exactly zero (decoupled weight decay multiplies the
  weight itself, which is zero), and gradient clipping sees only live weights;
* :meth:`MaskKeeper.restore`, called after every ``optimizer.step()``, zeroes the pruned weights
  again, which also covers optimiser state carried over from before pruning or a custom update.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitprune.weights.dimap import apply_masks, check_masks


class MaskKeeper:
    """Keep ``model``'s pruned weights at zero; masks are ``{weight name: bool mask}`` (True = kept).

    The masks are applied at construction. Call :meth:`restore` after each optimiser step (or pass
    it as the training loop's after-step callback); :meth:`remove` detaches the gradient hooks.
    Usable as a context manager that removes the hooks on exit.
    """

    def __init__(self, model: nn.Module, masks: dict[str, Tensor], hooks: bool = True):
        params = dict(model.named_parameters())
        check_masks(params, masks)
        self.params = {name: params[name] for name in masks}
        self.masks = dict(masks)
        apply_masks(model, masks)
        self._handles = [self._hook(name) for name in self.masks] if hooks else []

    def _mask(self, name: str, like: Tensor) -> Tensor:
        """The mask of ``name`` as ``like``'s device and dtype (cached; the model may have moved)."""
        mask = self.masks[name]
        if mask.device != like.device or mask.dtype != like.dtype:
            mask = self.masks[name] = mask.to(device=like.device, dtype=like.dtype)
        return mask

    def _hook(self, name: str) -> torch.utils.hooks.RemovableHandle:
        return self.params[name].register_hook(lambda grad: grad * self._mask(name, grad))

    @torch.no_grad()
    def restore(self) -> None:
        """Zero every pruned weight again (cheap; call after each optimiser step)."""
        for name, param in self.params.items():
            param.mul_(self._mask(name, param))

    __call__ = restore

    def remove(self) -> None:
        """Detach the gradient hooks (the weights are left as they are)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> MaskKeeper:
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()
