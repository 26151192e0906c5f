"""DIMAP masks: one threshold per module, solved for a parameter or MAC target.

He et al., "Data-independent Module-aware Pruning for Hierarchical Vision Transformers" (DIMAP,
ICLR 2024). Each weight gets the in-layer score of :mod:`vitprune.weights.scores`; the scores of
all layers of one module (QKV-M, PRJ-M, MLP-M) are pooled and cut by one threshold per module.

The paper does not say how a target becomes three thresholds. **Our reading** (documented as
such): every module loses the same fraction s of its weights, each through its own threshold,
which lands exactly on round(s · module size) removed weights (ties broken by rank, see
:mod:`vitprune.weights.select`). Targets:

* ``params=p``: the fraction of *prunable* weights removed (the weights of the selected modules'
  Linear layers; biases and auxiliary layers are never pruned), so s = p. The fraction of *all*
  parameters is smaller; :func:`vitprune.weights.report.build_report` gives both.
* ``macs=m``: the MACs the pruned model keeps, as every method reads ``macs=``: a fraction of the
  dense model's MACs (0.63) or GMACs (``"2.9G"``). Each weight costs one MAC per token its layer
  sees; s is bisected until the model's theoretical (nonzero-aware) MACs meet the target.

Ablations (paper §4.3): ``scope="model"`` pools every prunable layer under one threshold ("model
as module"); ``scope="layer"`` removes the same fraction from every layer, i.e. uniform magnitude
pruning (inside a layer the score ranks like |w|).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from vitprune.measure.formula import macs_target, out_of_reach
from vitprune.measure.macs import macs
from vitprune.weights.counting import example_images, linear_tokens
from vitprune.weights.modules import MODULES, Layer, layers
from vitprune.weights.scores import Ranked, one_thread, rank_weight
from vitprune.weights.select import keep_mask, removal_counts

SCOPES = ("module", "model", "layer")
BISECTION_STEPS = 40


def check_fraction(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a fraction removed, strictly between 0 and 1")
    return float(value)


def check_target(params: float | None, macs: float | str | None) -> tuple[str, float | str]:
    """The one target given, as ``("params", fraction removed)`` or ``("macs", target)``; ``ValueError``
    otherwise (a ``macs=`` target is checked against the model by :func:`dimap_masks`)."""
    given = {k: v for k, v in (("params", params), ("macs", macs)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "give exactly one target, params_removed= (--params-removed) or macs=; "
            f"got {sorted(given) or 'none'}"
        )
    ((kind, value),) = given.items()
    return kind, check_fraction(kind, value) if kind == "params" else value


def _groups(found: list[Layer], scope: str) -> list[list[int]]:
    """Indices into ``found`` that share one threshold under ``scope``."""
    if scope == "module":
        names = dict.fromkeys(layer.module for layer in found)
        return [[i for i, layer in enumerate(found) if layer.module == m] for m in names]
    if scope == "model":
        return [list(range(len(found)))]
    if scope == "layer":
        return [[i] for i in range(len(found))]
    raise ValueError(f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}")


def _counts(ranked: list[Ranked], groups: list[list[int]], s: float) -> list[int]:
    """Weights removed per layer when every group loses round(s · group size)."""
    counts = [0] * len(ranked)
    for group in groups:
        pool = [ranked[i] for i in group]
        k = round(s * sum(r.size for r in pool))
        for i, c in zip(group, removal_counts(pool, k), strict=True):
            counts[i] = c
    return counts


def _removed_share(model: nn.Module, images: Tensor, prunable: float, value: float | str) -> float:
    """The share of the prunable layers' MACs to remove so the model keeps the ``macs=value`` target."""
    report = macs(model, images)
    target = macs_target(value, report.dense)
    floor = report.mean - prunable
    if not floor < target < report.mean:
        raise ValueError(
            out_of_reach("dimap", value, target, floor, report.mean, report.dense)
            + " (its ends: every prunable weight removed, nothing removed)"
        )
    return (report.mean - target) / prunable


def _solve_macs(ranked, groups, cost: list[float], target: float) -> list[int]:
    """Bisect s until the removed share of the prunable layers' MACs reaches ``target``."""
    dense = sum(c * r.size for c, r in zip(cost, ranked, strict=True))

    def removed(counts):
        return sum(c * n for c, n in zip(cost, counts, strict=True)) / dense

    lo, hi = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if removed(_counts(ranked, groups, mid)) >= target:
            hi = mid
        else:
            lo = mid
    below, above = _counts(ranked, groups, lo), _counts(ranked, groups, hi)
    return min((below, above), key=lambda counts: abs(removed(counts) - target))


@torch.no_grad()
def dimap_masks(
    model: nn.Module,
    params: float | None = None,
    macs: float | None = None,
    scope: str = "module",
    modules=MODULES,
    images: Tensor | None = None,
) -> dict[str, Tensor]:
    """Boolean keep-masks (True = kept) keyed by weight name, e.g. ``layers.0.blocks.0.attn.qkv.weight``.

    Exactly one target: ``params`` (fraction of prunable weights removed) or ``macs`` (what the
    pruned model keeps: a fraction of the dense model's MACs, or ``"2.9G"``; token counts come from
    one forward pass on ``images``, by default a zero batch of the model's input size).
    ``scope``: ``"module"`` (DIMAP), ``"model"`` (one global threshold) or ``"layer"`` (uniform
    magnitude). ``modules`` selects among ``qkv``, ``proj``, ``mlp``. The model is not modified (see
    :func:`apply_masks`).
    """
    kind, target = check_target(params, macs)
    found = layers(model, modules)
    groups = _groups(found, scope)
    if kind == "macs":
        images = images if images is not None else example_images(model)
        tokens = linear_tokens(model, images)
        cost = [tokens[layer.name] for layer in found]
        prunable = sum(c * layer.linear.weight.numel() for c, layer in zip(cost, found, strict=True))
        target = _removed_share(model, images, prunable, target)
    with one_thread():  # many small memory-bound operations: thread start-up would dominate
        ranked = [rank_weight(layer.linear.weight) for layer in found]
        if kind == "params":
            counts = _counts(ranked, groups, target)
        else:
            counts = _solve_macs(ranked, groups, cost, target)
        return {
            layer.param: keep_mask(r, c, layer.linear.weight.shape)
            for layer, r, c in zip(found, ranked, counts, strict=True)
        }


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """Zero, in place, every weight whose mask entry is False; returns ``model``.

    ``ValueError`` if a mask names no parameter of the model or has the wrong shape.
    """
    params = dict(model.named_parameters())
    check_masks(params, masks)
    for name, mask in masks.items():
        params[name].mul_(mask.to(device=params[name].device, dtype=params[name].dtype))
    return model


def check_masks(params: dict[str, Tensor], masks: dict[str, Tensor]) -> None:
    """``ValueError`` listing masks that name no parameter, have the wrong shape or are not bool."""
    problems = []
    for name, mask in masks.items():
        if name not in params:
            problems.append(f"{name}: no such parameter")
        elif mask.shape != params[name].shape:
            problems.append(f"{name}: mask {tuple(mask.shape)} vs parameter {tuple(params[name].shape)}")
        elif mask.dtype != torch.bool:
            problems.append(f"{name}: mask dtype {mask.dtype}, expected torch.bool")
    if problems:
        raise ValueError(f"{len(problems)} mask(s) do not fit the model: " + "; ".join(problems[:5]))
