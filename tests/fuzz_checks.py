"""The properties every generated case must have; ``run_case`` checks them all and names its outcome.

- valid settings run: finite output of the unpatched model's shape and dtype;
- invalid ones raise ValueError naming the bad value, and leave the model untouched; methods that
  read the class token refuse models without one with their documented ValueError;
- token counts follow each method's rule, prefix tokens stay first, traced sources stay consistent;
- fp32: the MACs counter agrees with torch's FlopCounterMode (fused attention counted) per image,
  and each image's output does not depend on its batch companions;
- zero reduction gives the unpatched output; ``remove()`` restores the model bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from families import main_output
from fuzz_settings import NEEDS_CLASS_TOKEN, resolve
from fuzz_spaces import Case
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

import vitprune
from vitprune.measure import macs
from vitprune.measure.formula import schedule_macs
from vitprune.tokens.families import family_of
from vitprune.tokens.families.base import original_class
from vitprune.tokens.patch import BlockCount
from vitprune.tokens.state import TokenState
from vitprune.vit import describe

REFUSAL = "class_token=False"
BATCH_ATOL = 1e-5
MACS_RTOL = 0.02
RULE_TOL = 1e-5


def run_case(case: Case) -> str:
    """Check one case; returns "valid", "zero", "invalid" or "refused" (no class token)."""
    dtype = torch.bfloat16 if case.bf16 else torch.float32
    model = case.vit.build(dtype)
    x = case.vit.images(case.batch, case.image_seed, dtype)
    options, match = resolve(case.setting, case.method, model)
    types = [type(m) for m in model.modules()]
    with torch.no_grad():
        ref = main_output(model(x))
    refused = case.method in NEEDS_CLASS_TOKEN and case.vit.prefix == "none"
    try:
        vitprune.apply(model, case.method, trace_source=case.trace_source, **options)
    except ValueError as err:
        expected = [m for m in (match, REFUSAL if refused else None) if m]
        assert expected, f"valid options {options} raised: {err}"
        assert any(m in str(err) for m in expected), f"error {str(err)!r} does not contain {expected}"
        assert [type(m) for m in model.modules()] == types and not hasattr(model, "vitprune")
        return "refused" if REFUSAL in str(err) else "invalid"
    assert match is None and not refused, f"{options} was accepted; expected an error with {match or REFUSAL}"
    trace = traced_forward(model, x)
    assert trace.out.shape == ref.shape and trace.out.dtype == ref.dtype
    assert torch.isfinite(trace.out.float()).all(), "non-finite output"
    check_counts(model, trace)
    if case.trace_source:
        check_sources(model.vitprune.state)
    if case.setting.kind == "zero" and case.vit.family != "vit":
        # Once a block ran the method (keeping every token), RoPE and BEiT's relative bias are gathered
        # per image: the same values, batched, which sends SDPA down another kernel (~1e-11 apart).
        torch.testing.assert_close(trace.out, ref, atol=1e-6, rtol=0)
    elif case.setting.kind == "zero":
        assert torch.equal(trace.out, ref), (trace.out - ref).abs().max()
    if dtype == torch.float32:
        if case.vit.family == "vit":  # the reference CLS attention below is timm's Attention's
            check_adaptive_rule(model, trace)
        check_macs_and_batch(model, x, trace.out)
    vitprune.remove(model)
    check_restored(model, types, x, ref)
    if dtype == torch.float32:
        dense = counted_forward(model, x[:1])[1][0]
        assert math.isclose(macs(model, x[:1]).mean, dense, rel_tol=MACS_RTOL), "dense MACs disagree"
    return case.setting.kind


@dataclass
class Trace:
    out: Tensor
    counts: list[BlockCount]
    inputs: list[Tensor]  # into each block
    states: list[TokenState]  # after each block


def traced_forward(model, x: Tensor) -> Trace:
    """Forward with per-block token counts, block inputs and token states recorded."""
    ctx, inputs, states = model.vitprune, [], []
    blocks = ctx.family.blocks(model)
    handles = [b.register_forward_pre_hook(lambda m, args: inputs.append(args[0])) for b in blocks]
    handles += [b.register_forward_hook(lambda m, args, out: states.append(ctx.state)) for b in blocks]
    try:
        with torch.no_grad(), ctx.recording() as counts:
            out = main_output(model(x))
    finally:
        for handle in handles:
            handle.remove()
    return Trace(out, list(counts), inputs, states)


def _sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """Q·Kᵀ and A·V of CPU's fused attention kernel, which FlopCounterMode does not count by itself."""
    b, h, q, d = query_shape
    return 2 * b * h * q * key_shape[2] * (d + value_shape[3])


FUSED_CPU = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
COUNTED = re.compile(r"\.(patch_embed|blocks\.\d+\.(attn|mlp)|head|head_dist|attn_pool)$")


def counted_forward(model, x: Tensor) -> tuple[Tensor, list[float]]:
    """Output and MACs per image by FlopCounterMode, over the modules the MAC formula counts (one image
    at a time: a padded batch does work the formula rightly does not count). A Hugging Face model is
    counted whole (its module names differ; everything it multiplies is in the formula)."""
    outs, counted = [], []
    for image in x.split(1):
        # Not under no_grad: FlopCounterMode's module tracker fails on SigLIP's attention pool there.
        with FlopCounterMode(display=False, custom_mapping=FUSED_CPU) as counter:
            outs.append(main_output(model(image)).detach())
        flops = counter.get_flop_counts()
        if original_class(model).__module__.startswith("transformers."):
            counted.append((counter.get_total_flops() - method_flops(model, flops)) / 2)
        else:
            counted.append(sum(sum(ops.values()) for name, ops in flops.items() if COUNTED.search(name)) / 2)
    return torch.cat(outs), counted


def _total(flops: dict, name: str) -> int:
    """FLOPs of module ``name`` (its path in the model; FlopCounterMode prefixes the root's class)."""
    return sum(sum(ops.values()) for key, ops in flops.items() if key.endswith("." + name))


def method_flops(model, flops: dict) -> int:
    """FLOPs a block spends itself, outside its modules: the token method's own work (ToMe's matching),
    which the MAC formula leaves out as it counts the model's layers."""
    names = {id(m): n for n, m in model.named_modules()}
    own = 0
    for block in family_of(model).blocks(model):
        name = names[id(block)]
        own += _total(flops, name) - sum(
            _total(flops, f"{name}.{child}") for child, _ in block.named_children()
        )
    return own


def per_image_counts(method) -> bool:
    """Whether images may keep different numbers of tokens (STAR adaptive, SaiT value/mass)."""
    return getattr(method, "adaptive", False) or getattr(method, "mode", None) in ("value", "mass")


def keep(rate: float, n: int) -> int:
    """ceil(rate · n), the keep count EViT, STAR and SaiT document (float noise below 1e-9 ignored)."""
    return min(n, math.ceil(rate * n - 1e-9))


def _evit_step(m, layer: int, n: int) -> int:
    kept = keep(m.rates[layer], n) if m.rates.get(layer, 1.0) < 1 else n
    return kept + int(m.fuse and kept < n)


# Patches left after block ``layer`` from ``n``, by each method's documented rule.
RULES = {
    "tome": lambda m, layer, n: n - min(m.per_layer[layer], n // 2),
    "ppt": lambda m, layer, n: n - min(m.rs.get(layer, 0), n // 2),
    "evit": _evit_step,
    "topk": _evit_step,
    "random": _evit_step,
    "star": lambda m, layer, n: keep(m.rates[layer], n),
    "sait": lambda m, layer, n: keep(m.keep, n) if m.mode == "ratio" and layer in m.layers else n,
}


def check_counts(model, trace: Trace) -> None:
    """Counts follow the method's rule (an upper bound where images differ); prefix tokens stay first."""
    method, spec = model.vitprune.method, describe(model)
    p, n = spec.num_prefix, spec.num_patches
    adaptive = per_image_counts(method)
    entering = torch.full_like(trace.counts[0].attention, p + n)
    assert len(trace.counts) == spec.depth
    for layer, (count, (_, planned)) in enumerate(zip(trace.counts, method.schedule(spec), strict=True)):
        assert torch.equal(count.attention, entering), f"block {layer}: tokens in {count.attention}"
        assert (count.mlp <= count.attention).all(), f"block {layer} added tokens"
        assert (count.mlp - p >= (count.attention - p).clamp(max=1)).all(), f"block {layer} kept no patch"
        if adaptive:
            assert (count.mlp <= planned).all(), f"block {layer}: {count.mlp} above the bound {planned}"
        else:
            n = RULES[method.name](method, layer, n)
            assert (count.mlp == planned).all() and planned == p + n, (
                f"block {layer}: {count.mlp}, rule {p + n}"
            )
        entering = count.mlp
    pos = model.vitprune.state.pos
    assert torch.equal(pos[:, :p], torch.arange(p).expand(len(pos), p)), "prefix tokens moved"


def check_sources(state: TokenState) -> None:
    """Each original token is in at most one real token, sizes count sources, a token holds its own patch."""
    source, p = state.source, state.num_prefix
    valid = state.valid if state.valid is not None else torch.ones(source.shape[:2], dtype=torch.bool)
    real = source & valid[..., None]
    assert (real.sum(1) <= 1).all(), "an original token is in two tokens"
    assert torch.equal(source[:, :p, :p], torch.eye(p, dtype=torch.bool).expand(len(source), p, p))
    sizes = state.sizes(source.float())[..., 0].float()
    assert torch.equal(sizes[valid], source.sum(-1)[valid].float()), "sizes differ from source counts"
    own = state.pos.clamp_min(0)[..., None]
    assert (source.gather(2, own)[..., 0] | (state.pos < 0)).all(), "a token lost its own position"


def cls_attention(block, x: Tensor) -> Tensor:
    """CLS attention over all tokens, mean over heads ``[B, N]``, computed apart from vitprune."""
    attn = block.attn
    b, n, _ = x.shape
    q, k, _ = attn.qkv(block.norm1(x)).view(b, n, 3, attn.num_heads, attn.head_dim).unbind(2)
    q, k = attn.q_norm(q[:, :1].transpose(1, 2)), attn.k_norm(k.transpose(1, 2))
    return ((q @ k.transpose(-1, -2))[:, :, 0] * attn.head_dim**-0.5).softmax(-1).mean(1)


def check_adaptive_rule(model, trace: Trace) -> None:
    """At the first pruning block of STAR adaptive or SaiT value/mass, each image keeps what the rule says:
    patches scoring at least tau/n (value), or the fewest top ones whose score mass reaches the rate."""
    method = model.vitprune.method
    active = [layer for layer in range(len(model.blocks)) if method.active(layer)]
    if not per_image_counts(method) or not active:
        return
    layer, p = active[0], model.num_prefix_tokens
    a = cls_attention(model.blocks[layer], trace.inputs[layer])[:, p:]
    state = trace.states[layer]
    kept = torch.zeros_like(a, dtype=torch.bool)
    real = state.valid if state.valid is not None else torch.ones_like(state.pos, dtype=torch.bool)
    for i in range(len(a)):
        kept[i, state.pos[i][real[i]][p:] - p] = True
    if method.name == "star":
        if method.prior is not None and method.alpha < 1:
            prior = method.prior[layer].clamp_min(1e-6) ** (1 - method.alpha)
            a = a.clamp_min(1e-6) ** method.alpha * prior
        _check_mass(a, kept, method.rates[layer])
    elif method.mode == "mass":
        _check_mass(a, kept, method.mass)
    else:
        _check_value(a / a.sum(1, keepdim=True), kept, method.tau / a.shape[1])


def _check_mass(scores: Tensor, kept: Tensor, mass: float) -> None:
    s = scores / scores.sum(1, keepdim=True)
    for si, ki in zip(s, kept, strict=True):
        top = si[ki]
        if (~ki).any():
            assert top.min() >= si[~ki].max() - RULE_TOL, "kept patches are not the top ones"
        assert top.sum() >= mass - RULE_TOL, f"kept mass {top.sum():.6f} < {mass}"
        assert len(top) == 1 or top.sum() - top.min() < mass + RULE_TOL, "more patches than the mass needs"


def _check_value(s: Tensor, kept: Tensor, threshold: float) -> None:
    for si, ki in zip(s, kept, strict=True):
        if ki.sum() == 1 and si.max() < threshold + RULE_TOL:  # nothing reaches tau/n: the best one stays
            assert si[ki].item() >= si.max() - RULE_TOL
            continue
        assert si[ki].min() >= threshold - RULE_TOL, "a kept patch scores below tau/n"
        assert not (~ki).any() or si[~ki].max() < threshold + RULE_TOL, "a dropped patch reaches tau/n"


def check_macs_and_batch(model, x: Tensor, out: Tensor) -> None:
    """Counter vs FlopCounterMode per image (2%); each image alone gives its batch output (1e-5)."""
    report = macs(model, x)
    spec = describe(model)
    method = model.vitprune.method
    if not per_image_counts(method):
        assert torch.allclose(
            report.per_image, torch.tensor(schedule_macs(spec, method.schedule(spec))).double()
        )
    alone, counted = counted_forward(model, x)
    for i, c in enumerate(counted):
        assert math.isclose(report.per_image[i].item(), c, rel_tol=MACS_RTOL), (
            f"image {i}: {report.per_image[i]} vs {c}"
        )
    torch.testing.assert_close(alone, out, atol=BATCH_ATOL, rtol=0, msg="output depends on the batch")


def check_restored(model, types: list[type], x: Tensor, ref: Tensor) -> None:
    """After ``remove``: the original classes, no hooks or attributes left, bit-identical output."""
    assert [type(m) for m in model.modules()] == types
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not hasattr(model, "vitprune") and not hasattr(model, "sait")
    assert not any(hasattr(m, "_vp_capture") for m in model.modules())
    with torch.no_grad():
        assert torch.equal(main_output(model(x)), ref), "remove() did not restore the model bit for bit"
