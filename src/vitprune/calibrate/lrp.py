"""LRP "transformer attribution" (Chefer, Gur & Wolf, CVPR 2021) for timm ViTs, and STAR's offline prior.

For a target class c, every block b yields Ā_b = mean_heads((∇A_b ⊙ R^A_b)⁺), where A_b is the post-softmax
attention, ∇A_b the gradient of the raw logit y_c and R^A_b the LRP relevance of A_b propagated from the
one-hot start e_c. The map for start layer l is the CLS row of C_l = M_{L−1}⋯M_l with M_b = I + Ā_b, taken
over the patch columns, without row normalisation.

Rules (as in Chefer et al.'s reference code), all closed form under ``no_grad``, all totals per sample:
- Linear (qkv, proj, fc1, fc2, head): z⁺ rule (α=1, β=0), bias ignored.
- Bilinear A·V and Q·Kᵀ: gradient×input, halved for each operand.
- Residual Add: split of gradient×input, renormalised so the two branch totals are ΣR·|Σa|/(|Σa|+|Σb|)
  and ΣR·|Σb|/(|Σa|+|Σb|).
- Clone (skip path + branch): plain sum.
- Identity: LayerNorm, GELU, softmax, dropout, DropPath, ``q_norm``/``k_norm``, ``attn.norm``,
  ``mlp.norm``, ``fc_norm`` and LayerScale. CLS pooling puts the head-input relevance on token 0.
- Safe divide a ⊘ b = a / (b + 1e-9), with 0 where b == 0 exactly. There is no other ε.

LayerScale. A block adds ``a_out = ls1(proj(o))`` (and ``ls2(fc2(g))``) to the residual stream; the Add
rule is applied to exactly that tensor, so its split matches what the forward added. LayerScale itself is
x·γ, an elementwise layer whose gradient×input rule is the identity, so the relevance at ``proj``'s
(``fc2``'s) output equals the relevance of ``a_out``, and the z⁺ rule then uses ``proj``'s own weight W.
The z⁺ rule conserves per output unit for any weight, so conservation holds whatever γ is; where γ_k > 0
this is also identical to the z⁺ rule on the effective map diag(γ)W, since z⁺ is invariant to a positive
rescaling of a weight row.

Deviation (opt-in, ``stabilize_add=True``): in the Add rule the denominator z = u + v becomes
z + ε·sign(z) with ε = 1e-2·mean|z| per sample, which damps the rule's ill-conditioning where u + v ≈ 0
(our addition). The default reproduces the reference rules.

The calibration forward is explicit (A must exist as a tensor) but calls each block's own modules, so it
matches timm for LayerScale, qk-norm and register tokens; it works on a deep copy of the model in ``dtype``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn
from tqdm import tqdm

from vitprune.api import remove

_EPS = 1e-9


def safe_divide(a: Tensor, b: Tensor) -> Tensor:
    """a ⊘ b = a / (b + 1e-9), and 0 where b == 0 exactly (lrp.md §0)."""
    return torch.where(b == 0, 0.0, a / (b + _EPS))


def linear_zplus(x: Tensor, weight: Tensor, r: Tensor) -> Tensor:
    """z⁺ rule (α=1, β=0), bias ignored: Z⁺ = x⁺W⁺ᵀ + x⁻W⁻ᵀ, s = R ⊘ Z⁺, R_in = x⁺⊙(sW⁺) + x⁻⊙(sW⁻)."""
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    wp, wn = weight.clamp(min=0), weight.clamp(max=0)
    s = safe_divide(r, F.linear(xp, wp) + F.linear(xn, wn))
    return xp * (s @ wp) + xn * (s @ wn)


def bilinear(a: Tensor, b: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Z = a @ b: S = R ⊘ Z, R_a = ½·a⊙(S bᵀ), R_b = ½·b⊙(aᵀ S) (gradient×input, halved)."""
    s = safe_divide(r, a @ b)
    return 0.5 * a * (s @ b.mT), 0.5 * b * (a.mT @ s)


def residual_add(u: Tensor, v: Tensor, r: Tensor, stabilize: bool = False) -> tuple[Tensor, Tensor]:
    """Renormalised Add rule for y = u + v; every Σ is over one sample (dim 0 is the batch).

    S = R ⊘ (u+v), a = u⊙S, b = v⊙S; R_u = a·(f_a ⊘ Σa) and R_v = b·(f_b ⊘ Σb) with
    f_a = |Σa| ⊘ (|Σa|+|Σb|)·ΣR and f_b likewise. ``stabilize`` uses the denominator z + ε·sign(z),
    ε = 1e-2·mean|z| per sample (a documented deviation from the reference).
    """
    dims = tuple(range(1, u.ndim))
    z = u + v
    if stabilize:
        z = z + 1e-2 * z.abs().mean(dims, keepdim=True) * z.sign()
    s = safe_divide(r, z)
    a, b = u * s, v * s
    sa, sb, sr = (t.sum(dims, keepdim=True) for t in (a, b, r))
    total = sa.abs() + sb.abs()
    fa = safe_divide(sa.abs(), total) * sr
    fb = safe_divide(sb.abs(), total) * sr
    return a * safe_divide(fa, sa), b * safe_divide(fb, sb)


@dataclass
class RelevanceTrace:
    """What one LRP pass computed, per sample.

    ``logits`` [B, classes] from the calibration forward; ``attn_maps`` Ā_b [B, L, N, N];
    ``block_totals`` [B, L+1], ΣR at the input of block l (column l) and at the output of the last block
    (column L); ``attn_totals`` [B, L], ΣR^A_b; ``attn_branch_totals`` [B, L], the attention branch's share
    ΣR_a,b from the block's first Add. ``block_totals`` are 1 and ``attn_totals`` == ½·``attn_branch_totals``,
    up to the relevance the safe divide's 1e-9 drops where a denominator is near zero (lrp.md §4).
    """

    logits: Tensor
    attn_maps: Tensor
    block_totals: Tensor
    attn_totals: Tensor
    attn_branch_totals: Tensor
    num_prefix_tokens: int


def _check_model(model: nn.Module) -> None:
    """Reject what the rules above do not cover, naming the limitation."""
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"LRP supports timm VisionTransformer models, not {type(model).__name__}")
    if hasattr(model, "head_dist"):
        raise ValueError(
            "LRP needs a single CLS head; distilled models average two heads "
            "(STAR uses the non-distilled model)"
        )
    if model.cls_token is None:
        raise ValueError("LRP transformer attribution needs a class token (its CLS row); class_token=False")
    if model.attn_pool is not None or model.global_pool != "token":
        raise ValueError(f"LRP needs CLS-token pooling, not global_pool={model.global_pool!r}")
    if not isinstance(model.head, nn.Linear):
        raise ValueError("LRP needs a linear classifier head (num_classes > 0)")
    for i, blk in enumerate(model.blocks):
        ok = (
            type(blk) is Block
            and type(blk.attn) is Attention
            and blk.attn.gate is None
            and type(blk.mlp) is Mlp
            and isinstance(blk.mlp.fc1, nn.Linear)
        )
        if not ok:
            raise ValueError(f"block {i}: LRP supports timm Block/Attention/Mlp without gates or conv MLPs")


def calibration_copy(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Unpatched eval-mode deep copy in ``dtype`` with frozen parameters; the caller's model is untouched."""
    calib = remove(copy.deepcopy(model)).to(dtype).eval().requires_grad_(False)
    _check_model(calib)
    return calib


@dataclass
class _Saved:
    x0: Tensor
    h1: Tensor
    q: Tensor
    k: Tensor
    v: Tensor
    attn: Tensor
    o: Tensor
    a_out: Tensor
    x1: Tensor
    h2: Tensor
    g: Tensor
    m_out: Tensor


def _block_forward(blk: Block, x0: Tensor) -> tuple[Tensor, _Saved]:
    """timm's non-fused ``Block.forward`` (no mask) spelled out with the block's own modules, saving operands.

    Calling the modules themselves keeps LayerScale, qk-norm, ``attn.norm`` and DropPath exactly as in timm.
    """
    attn = blk.attn
    b, n, _ = x0.shape
    h1 = blk.norm1(x0)
    q, k, v = attn.qkv(h1).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    a = attn.attn_drop(((q * attn.scale) @ k.mT).softmax(dim=-1))
    o = attn.norm((a @ v).transpose(1, 2).reshape(b, n, attn.attn_dim))
    a_out = blk.drop_path1(blk.ls1(attn.proj_drop(attn.proj(o))))
    x1 = x0 + a_out
    h2 = blk.norm2(x1)
    mlp = blk.mlp
    g = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(h2))))
    m_out = blk.drop_path2(blk.ls2(mlp.drop2(mlp.fc2(g))))
    return x1 + m_out, _Saved(x0, h1, q, k, v, a, o, a_out, x1, h2, g, m_out)


def _block_relprop(blk: Block, s: _Saved, r: Tensor, stabilize: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Relevance at a block's output → (relevance at its input, R^A [B,h,N,N], attention-branch share R_a).

    lrp.md §2 steps 1–12: Add(x1, m_out) → fc2, fc1 (z⁺) → Clone (sum) → Add(x0, a_out) → proj (z⁺) →
    A·V (½) → Q·Kᵀ (½) → pack [q|k|v]×heads×d as the forward split it → qkv (z⁺) → Clone (sum).
    """
    attn, mlp = blk.attn, blk.mlp
    r_res, r_m = residual_add(s.x1, s.m_out, r, stabilize)
    r_h2 = linear_zplus(s.h2, mlp.fc1.weight, linear_zplus(s.g, mlp.fc2.weight, r_m))
    r_res, r_a = residual_add(s.x0, s.a_out, r_res + r_h2, stabilize)
    b, h, n, d = s.v.shape
    r_o = linear_zplus(s.o, attn.proj.weight, r_a).reshape(b, n, h, d).transpose(1, 2)
    r_attn, r_v = bilinear(s.attn, s.v, r_o)
    r_q, r_kt = bilinear(s.q, s.k.mT, r_attn)
    r_qkv = torch.stack((r_q, r_kt.mT, r_v)).permute(1, 3, 0, 2, 4).reshape(b, n, 3 * h * d)
    return r_res + linear_zplus(s.h1, attn.qkv.weight, r_qkv), r_attn, r_a


def _trace(calib: nn.Module, images: Tensor, targets: Tensor, stabilize_add: bool) -> RelevanceTrace:
    """Forward with autograd, ∇A of Σ_b y[b, c_b], then the closed-form relprop from e_c (one pass)."""
    dtype = next(calib.parameters()).dtype
    x = images.to(dtype).detach().requires_grad_(True)  # parameters are frozen: A must still join the graph
    with torch.enable_grad():
        x = calib.norm_pre(calib.patch_drop(calib._pos_embed(calib.patch_embed(x))))
        saved = []
        for blk in calib.blocks:
            x, s = _block_forward(blk, x)
            saved.append(s)
        feat = calib.head_drop(calib.fc_norm(calib.pool(calib.norm(x))))
        logits = calib.head(feat)
        targets = targets.reshape(-1, 1).to(logits.device)
        picked = logits.gather(1, targets)
        grads = torch.autograd.grad(picked.sum(), [s.attn for s in saved])
    with torch.no_grad():
        saved = [_Saved(**{name: t.detach() for name, t in vars(s).items()}) for s in saved]
        one_hot = torch.zeros_like(logits).scatter_(1, targets, 1.0)
        r = torch.zeros_like(x)
        r[:, 0] = linear_zplus(feat.detach(), calib.head.weight, one_hot)  # CLS pooling; norms are identity
        totals = [r.sum((1, 2))]
        attn_maps, attn_totals, branch_totals = [], [], []
        for blk, s, grad in zip(reversed(calib.blocks), reversed(saved), reversed(grads), strict=True):
            r, r_attn, r_a = _block_relprop(blk, s, r, stabilize_add)
            totals.append(r.sum((1, 2)))
            attn_totals.append(r_attn.sum((1, 2, 3)))
            branch_totals.append(r_a.sum((1, 2)))
            attn_maps.append((grad * r_attn).clamp(min=0).mean(1))
    return RelevanceTrace(
        logits=logits.detach(),
        attn_maps=torch.stack(attn_maps[::-1], 1),
        block_totals=torch.stack(totals[::-1], 1),
        attn_totals=torch.stack(attn_totals[::-1], 1),
        attn_branch_totals=torch.stack(branch_totals[::-1], 1),
        num_prefix_tokens=calib.num_prefix_tokens,
    )


def relevance_trace(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    dtype: torch.dtype = torch.float64,
    stabilize_add: bool = False,
) -> RelevanceTrace:
    """Run the LRP pass for ``images`` [B,3,H,W] and one target class per image (``targets`` [B], long).

    Relevance starts at e_c with value 1 and ∇A is the gradient of the raw logit y_c. Works on a deep copy of
    ``model`` in ``dtype`` (float64 recommended, lrp.md §5); the caller's model is not modified.
    """
    if targets.shape != images.shape[:1]:
        raise ValueError(f"targets must have shape [B]={list(images.shape[:1])}, got {list(targets.shape)}")
    return _trace(calibration_copy(model, dtype), images, targets.long(), stabilize_add)


def cls_rollout(attn_maps: Tensor, num_prefix_tokens: int) -> Tensor:
    """Ā [B, L, N, N] → maps [B, L, N − prefix]: map_l = C_l[0, prefix:], C_l = M_{L−1}⋯M_l, M_b = I + Ā_b.

    All start layers in one pass with suffix vectors r_{L−1} = e_0ᵀM_{L−1}, r_l = r_{l+1}M_l (lrp.md §3).
    No row normalisation.
    """
    batch, depth, n, _ = attn_maps.shape
    r = attn_maps.new_zeros(batch, 1, n)
    r[:, 0, 0] = 1.0
    maps = []
    for layer in reversed(range(depth)):
        r = r + r @ attn_maps[:, layer]
        maps.append(r[:, 0, num_prefix_tokens:])
    return torch.stack(maps[::-1], 1)


def attribution_maps(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    dtype: torch.dtype = torch.float64,
    stabilize_add: bool = False,
) -> Tensor:
    """Chefer's transformer-attribution maps for every start layer, ``[B, L, num_patches]``, ≥ 0."""
    trace = relevance_trace(model, images, targets, dtype, stabilize_add)
    return cls_rollout(trace.attn_maps, trace.num_prefix_tokens)


def _pixel_maps(maps: Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> Tensor:
    """[B, L, P] → [B, L, H, W]: bilinear ×patch upsample (align_corners=False), min–max to [0,1] per map.

    A constant map (max == min) becomes zeros instead of the reference's division by zero.
    """
    b, depth, _ = maps.shape
    size = (grid[0] * patch[0], grid[1] * patch[1])
    up = F.interpolate(maps.reshape(b * depth, 1, *grid), size=size, mode="bilinear", align_corners=False)
    up = up.reshape(b, depth, *size)
    lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
    return torch.where(hi > lo, (up - lo) / (hi - lo), 0.0)


def star_prior(
    model: nn.Module,
    images: Tensor,
    top_k: int = 5,
    targets: Literal["per_image", "first_image"] = "per_image",
    batch_size: int = 4,
    dtype: torch.dtype = torch.float64,
    progress: bool = True,
    stabilize_add: bool = False,
) -> Tensor:
    """STAR's offline inter-layer prior, ``[L, num_patches]`` in [0, top_k] (star_sait.md §A.3, lrp.md §3).

    For each image and each of its ``top_k`` predicted classes, every start layer's map is upsampled to
    pixels, min–max normalised, summed over the classes and averaged over the images; each patch cell's mean
    is then that position's score. ``targets="first_image"`` reproduces the reference quirk of reusing image
    0's top classes for every image; ``"per_image"`` (default) is the labelled deviation using each image's
    own top classes.
    (image, class) pairs run ``batch_size`` at a time (≈0.25 GiB each for DeiT-S in float64).
    ``stabilize_add`` selects the stabilised Add rule (a deviation, see the module docstring).
    """
    if targets not in ("per_image", "first_image"):
        raise ValueError(f"targets must be 'per_image' or 'first_image', got {targets!r}")
    calib = calibration_copy(model, dtype)
    images = images.to(dtype)
    with torch.no_grad():
        logits = torch.cat([calib(chunk) for chunk in images.split(batch_size)])
    classes = logits.topk(top_k, dim=1).indices
    if targets == "first_image":
        classes = classes[:1].expand_as(classes)
    pair_images = torch.arange(len(images)).repeat_interleave(top_k)
    pair_classes = classes.reshape(-1)
    patch = calib.patch_embed.patch_size
    if images.shape[-2] % patch[0] or images.shape[-1] % patch[1]:
        raise ValueError(f"image size {list(images.shape[-2:])} is not a multiple of the patch size {patch}")
    grid = (images.shape[-2] // patch[0], images.shape[-1] // patch[1])
    total = None
    chunks = zip(pair_images.split(batch_size), pair_classes.split(batch_size), strict=True)
    steps = -(-len(pair_images) // batch_size)
    for idx, cls in tqdm(chunks, total=steps, desc="LRP prior", unit="batch", disable=not progress):
        trace = _trace(calib, images[idx], cls, stabilize_add)
        pixels = _pixel_maps(cls_rollout(trace.attn_maps, trace.num_prefix_tokens), grid, patch).sum(0)
        total = pixels if total is None else total + pixels
    mean = total / len(images)
    cells = F.avg_pool2d(mean, kernel_size=patch)
    return cells.reshape(cells.shape[0], -1)
