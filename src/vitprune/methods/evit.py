"""EViT baseline: keep the most attended tokens (Liang et al., ICLR 2022) — certain.

In each listed block (default 3, 6, 9: the paper's 4th, 7th and 10th of 12; the same
quarters of the depth in other models) keep
ceil(keep · patches) patch tokens with the highest CLS attention (mean over heads); with ``fuse``
(on, as in the paper) the dropped ones are averaged, weighted by that attention, into one extra
token. ``keep`` is one rate for every listed block or one rate per listed block. No proportional
attention (EViT does not use it).
"""

from __future__ import annotations

from collections.abc import Sequence

from vitprune.methods.base import TokenMethod, check_layer, check_options, register, require_class_token
from vitprune.methods.target import bisect, method_macs, parse_macs_target, reach_error
from vitprune.tokens.select import keep_topk
from vitprune.vit import VitSpec


def default_layers(depth: int) -> tuple[int, ...]:
    """Blocks at a quarter, half and three quarters of the depth: 3, 6, 9 for 12 blocks (the paper's).

    Capped at the last block: round(2 · 3/4) is 2, past the end of a two-block model."""
    return tuple(sorted({min(round(depth * i / 4), depth - 1) for i in (1, 2, 3)}))


def _check_rate(value: object, method: str = "evit") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{method}: keep={value!r} is invalid; allowed: a rate in (0, 1]")
    return float(value)


class EViT(TokenMethod):
    name = "evit"
    summary = "EViT baseline: keep the top tokens by CLS attention, fuse the rest into one"

    def __init__(self, rates: dict[int, float], fuse: bool = True):
        self.rates = rates
        self.fuse = fuse
        self.reducing = frozenset(layer for layer, rate in rates.items() if rate < 1.0)

    def active(self, layer: int) -> bool:
        return layer in self.reducing  # ints, not float rates: see TokenMethod.kept

    def reduce(self, layer, x, state, attn):
        scores = attn.cls_scores(start=state.num_prefix)
        return keep_topk(x, state, scores, self.kept(layer, state.num_patches, self.rates[layer]), self.fuse)

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        counts, n = [], spec.num_patches
        for layer in range(spec.depth):
            after = n
            if self.active(layer):
                after = self.kept(layer, n, self.rates[layer])
                after += int(self.fuse and after < n)
            counts.append((n + spec.num_prefix, after + spec.num_prefix))
            n = after
        return counts


def _rates(
    keep: float | Sequence[float], layers: Sequence[int], depth: int, method: str = "evit"
) -> dict[int, float]:
    layers = [check_layer(v, depth) for v in layers]
    if isinstance(keep, list | tuple):
        if len(keep) != len(layers):
            raise ValueError(f"{method}: {len(keep)} keep rates for {len(layers)} layers {list(layers)}")
        return {layer: _check_rate(k, method) for layer, k in zip(layers, keep, strict=True)}
    return {layer: _check_rate(keep, method) for layer in layers}


def solve_rates(method: str, spec: VitSpec, config: dict, fuse: bool) -> dict[int, float]:
    """Keep rate per listed block from ``keep=`` and ``layers=``, or solved for ``macs=`` (one rate for
    every listed block); EViT's, and its baselines' (``topk``, ``random``: ``fuse=False``)."""
    layers = tuple(config.get("layers", default_layers(spec.depth)))
    if config.get("macs") is None:
        return _rates(config.get("keep", 1.0), layers, spec.depth, method)
    target = parse_macs_target(config["macs"], spec)
    _rates(1.0, layers, spec.depth, method)

    def cost(rate: float) -> float:
        return method_macs(EViT({layer: rate for layer in layers}, fuse), spec)

    if not cost(1e-6) * 0.98 <= target:
        raise reach_error(f"{method} at layers {list(layers)}", config["macs"], target, cost(1e-6), spec)
    rate = bisect(cost, 1e-6, 1.0, target)
    if cost(rate) >= cost(1.0):  # keeping all but one and fusing that one saves nothing: keep all
        rate = 1.0
    return dict.fromkeys(layers, rate)


@register(EViT.name, EViT.summary)
def build(spec: VitSpec, **config) -> EViT:
    check_options("evit", config, ("keep", "layers", "fuse", "macs"), knob="keep")
    require_class_token("evit", spec)
    fuse = bool(config.get("fuse", True))
    return EViT(solve_rates("evit", spec, config, fuse), fuse)
