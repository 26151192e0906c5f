"""What timm's ViT-like families (VisionTransformer, Eva, Beit) share: blocks in ``model.blocks``, the
prefix count, a conv patch embedding, one classifier head, each block's ``attn`` and ``mlp``, and
``forward_intermediates`` (one signature in all three) on the full patch grid."""

from __future__ import annotations

from timm.layers import Format
from timm.models._features import feature_take_indices  # where timm's own models import it from
from torch import Tensor

from vitprune.tokens.families.base import AnyGrid, Family, UnsupportedModelError, linear_macs


def restored_intermediates(
    self,
    x: Tensor,
    indices=None,
    return_prefix_tokens: bool = False,
    norm: bool = False,
    stop_early: bool = False,
    output_fmt: str = "NCHW",
    intermediates_only: bool = False,
    **kwargs,
):
    """timm's ``forward_intermediates`` on the full patch grid under any token method: the taken blocks'
    outputs and the final features restored (``tokens/dense.py``), then normed, split from the prefix
    and shaped as timm does. The library's own method runs the blocks and returns the final features."""
    if output_fmt not in ("NCHW", "NLC"):
        raise ValueError(f"output_fmt={output_fmt!r}; allowed: 'NCHW' or 'NLC'")
    dense, p = self.vitprune.dense, self.num_prefix_tokens
    take, last = feature_take_indices(len(self.blocks), indices)
    dense.collect(take, final=True)
    try:
        out = super(type(self), self).forward_intermediates(
            x,
            indices,
            norm=norm,
            stop_early=stop_early,
            output_fmt="NLC",
            intermediates_only=intermediates_only,
            **kwargs,
        )
    finally:  # a failed call must not leave later forwards restoring
        taken = dense.collected()
    ys = [self.norm(taken[i]) if norm else taken[i] for i in take]
    prefixes = [y[:, :p] for y in ys]
    ys = [y[:, p:] for y in ys]
    if output_fmt == "NCHW":
        h, w = dense.resampled[1] if dense.resampled else self.patch_embed.dynamic_feat_size(x.shape[-2:])
        ys = [y.reshape(y.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous() for y in ys]
    stopped = stop_early and last < len(self.blocks) - 1  # the last block run was not the model's last
    if isinstance(out, dict):  # VisionTransformer's output_dict=True
        out["image_intermediates"] = ys
        if p and return_prefix_tokens:
            out["image_intermediates_prefix"] = prefixes
        if stopped and not intermediates_only:
            out["image_features"] = self.norm(taken[last])
        return out
    if p and return_prefix_tokens:
        ys = list(zip(ys, prefixes, strict=True))
    if intermediates_only:
        return ys
    return (self.norm(taken[last]) if stopped else out[0]), ys


class TimmFamily(Family):
    def blocks(self, model):
        return model.blocks

    def num_prefix(self, model):
        return model.num_prefix_tokens

    def has_class_token(self, model):
        return model.cls_token is not None

    def patch_embed(self, model):
        return model.patch_embed.proj

    def default_img_size(self, model):
        return tuple(model.patch_embed.img_size)

    def head_macs(self, model):
        return linear_macs([model.head])

    def attention(self, blk):
        return blk.attn

    def mlp(self, blk):
        return blk.mlp

    def any_grid(self, model, grid):
        """timm's ``dynamic_img_size``: the patch embedding takes any size and ``_pos_embed`` resamples
        the absolute position embedding (``resample_abs_pos_embed``) and, in Eva, builds RoPE for the grid."""
        embed = model.patch_embed
        if not hasattr(model, "dynamic_img_size") or not hasattr(embed, "strict_img_size"):
            raise UnsupportedModelError(f"{type(model).__name__} has no dynamic_img_size: no resized input")
        if getattr(embed, "dynamic_img_pad", False):
            raise UnsupportedModelError("timm dynamic_img_pad pads the input: its grid is not the one asked")
        return AnyGrid(
            attributes=(
                (model, "dynamic_img_size", True),
                (embed, "strict_img_size", False),
                (embed, "flatten", False),
                (embed, "output_fmt", Format.NHWC),
            )
        )
