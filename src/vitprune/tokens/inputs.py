"""What a method does to the model's input before any block: resize it, or read its pixels.

- ``method.grid`` (the ``resize`` baseline): the model's class becomes a subclass whose ``forward``
  resizes the input (bilinear, antialiased) to that patch grid times the patch size, then calls the
  library's own ``forward``, which takes it the way its library does (``Family.any_grid``: timm's
  ``dynamic_img_size``, Hugging Face's ``interpolate_pos_encoding``). The model still takes its
  original input size, and ``torch.compile`` sees one forward (a hook on the model would be a frame,
  and a graph, of its own). timm's ``forward_features`` and ``forward_intermediates`` resize the same
  way, and dense outputs interpolate the features back to the model's own grid (``resampled``).
- ``method.see(pixels)`` (the ``random`` baseline): a pre-hook on the patch embedding hands the
  method the pixels each forward embeds, so it can derive per-image values from them.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

_MISSING = object()
_RESIZED: dict[type, type] = {}


def resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    """``images`` [B, C, H, W] resized to ``size`` (bilinear, antialiased when shrinking), same dtype."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    out = F.interpolate(work, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.to(images.dtype)


def _resizing_class(patched: type) -> type:
    """The model's patched class (a subclass of the library's, holding the family's overrides) with a
    ``forward`` that runs its own on the input resized to ``self._vp_input``'s size, with the keywords
    its library needs for it. A sibling, not a subclass: the overrides' ``super(type(self), self)``
    must still reach the library's class. One per patched class."""
    if patched in _RESIZED:
        return _RESIZED[patched]
    own = {k: v for k, v in vars(patched).items() if k not in ("__dict__", "__weakref__")}
    entries = [n for n in ("forward", "forward_features", "forward_intermediates") if hasattr(patched, n)]
    resizing = {name: _resizing(getattr(patched, name)) for name in entries}
    _RESIZED[patched] = type(f"Resized{patched.__name__}", patched.__bases__, {**own, **resizing})
    return _RESIZED[patched]


def _resizing(inner):
    """``inner`` (a forward, or timm's ``forward_features`` or ``forward_intermediates``) run on the input
    resized (an input already of that size is left as it is, so ``forward`` calling another is fine)."""

    @functools.wraps(inner)  # the library's signature, which torch.export binds inputs to
    def forward(self, *args, **kwargs):
        size, extra = self._vp_input
        if args:
            args = (resize_images(args[0], size), *args[1:])
        else:
            key = "pixel_values" if "pixel_values" in kwargs else "x"
            kwargs = {**kwargs, key: resize_images(kwargs[key], size)}
        return inner(self, *args, **kwargs, **extra)

    return forward


def _show_pixels(embed: nn.Module, args: tuple) -> None:
    """Forward pre-hook on the patch embedding: the method sees the pixels about to be embedded."""
    embed._vp_ctx.method.see(args[0])


def check(model: nn.Module, family, method) -> None:
    """Refuse, before anything is patched, a resized input the family cannot take faithfully."""
    if getattr(method, "grid", None) is not None:
        family.any_grid(model, method.grid)


def resampled(model: nn.Module, family, method) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """For a method that resizes the input: (the patch grid it runs at, the model's own), the grids
    dense outputs interpolate its features between; None for every other method."""
    grid = getattr(method, "grid", None)
    if grid is None:
        return None
    (h, w), (sh, sw) = family.default_img_size(model), family.patch_embed(model).stride
    return tuple(grid), (h // sh, w // sw)


def install(model: nn.Module, ctx) -> list:
    """Classes, hooks and attributes ``ctx.method``'s input handling needs; ``uninstall`` undoes them.
    What runs per forward reads what it needs from the module itself, so a deep copy keeps working."""
    undo: list = []

    def set_attr(module: nn.Module, name: str, value: object) -> None:
        undo.append((module, name, getattr(module, name, _MISSING)))
        setattr(module, name, value)

    method, family = ctx.method, ctx.family
    embed = family.patch_embed(model)
    grid = getattr(method, "grid", None)
    if grid is not None:
        resizing = family.any_grid(model, grid)
        for module, name, value in resizing.attributes:
            set_attr(module, name, value)
        size = (grid[0] * embed.stride[0], grid[1] * embed.stride[1])
        set_attr(model, "_vp_input", (size, resizing.kwargs))
        set_attr(model, "__class__", _resizing_class(type(model)))
        family.swapped(model)  # a library that keys something on the class learns this one too
    if hasattr(method, "see"):
        set_attr(embed, "_vp_ctx", ctx)
        undo.append(embed.register_forward_pre_hook(_show_pixels))
    return undo


def uninstall(undo: list) -> None:
    """Remove the hooks and restore the classes and attributes ``install`` set, in reverse order."""
    for item in reversed(undo):
        if isinstance(item, RemovableHandle):
            item.remove()
            continue
        module, name, value = item
        if value is _MISSING:
            delattr(module, name)
        else:
            setattr(module, name, value)
