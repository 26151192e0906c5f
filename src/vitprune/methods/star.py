"""STAR: synergistic patch pruning (Zhang, Wei & Freris, ICLR 2024; seed 000) — certain (authors' code).

In every block, after attention, each patch gets the fused score

    f = a^α · R[l, original position]^(1−α)        (ε-clamped before the fractional powers)

where ``a`` is the CLS attention to the patch (mean over heads, online) and ``R`` the offline LRP
prior of that patch position at layer l (``vitprune calibrate --method star``). f is the closed-form
minimiser of α·KL(f‖a) + (1−α)·KL(f‖R) (paper's fusion; α = 0.3 weighs the CLS attention). The block
keeps ceil(r_l · patches) patches by f and drops the rest (no merging, no fused token).

Per-layer keep rates r_l come from the calibration's average cosine similarity (ACS) of the patch
tokens entering each block: the least similar layer keeps all, the most similar keeps ``r_min``
(0.6 in the authors' notebook), linearly in between. Rates may also be given explicitly, or
``macs=`` solves ``r_min`` by bisection (our addition). The prior is looked up by each surviving
token's *original* position (the authors' code misaligns it after block 0; this does not).

``adaptive=True`` is the input-adaptive variant: r_l becomes a score-mass fraction, and each image
keeps the fewest top patches whose normalised fused score reaches it, so images keep different
numbers of patches. The batch is padded to its longest image with an attention key mask; MACs are
counted per image from the real counts.
"""

from __future__ import annotations

from torch import Tensor

from vitprune.methods.base import TokenMethod, check_options, register, require_class_token
from vitprune.methods.target import bisect, method_macs, parse_macs_target, reach_error
from vitprune.tokens.select import keep_topk, mass_counts
from vitprune.vit import VitSpec

EPS = 1e-6


def fuse_scores(attention: Tensor, prior: Tensor, alpha: float, eps: float = EPS) -> Tensor:
    """a^α · R^(1−α), unnormalised (normalising does not change any ranking)."""
    return attention.clamp_min(eps).pow(alpha) * prior.clamp_min(eps).pow(1.0 - alpha)


def acs_rates(acs: Tensor, r_min: float) -> list[float]:
    """Keep rate per layer from ACS: 1.0 at the least similar layer, ``r_min`` at the most similar."""
    span = float(acs.max() - acs.min())
    if span == 0:
        return [1.0] * len(acs)
    return [1.0 - (1.0 - r_min) * float(a - acs.min()) / span for a in acs]


class STAR(TokenMethod):
    name = "star"
    summary = "STAR: fuse CLS attention with an offline LRP prior; prune every block at ACS-chosen rates"

    def __init__(self, rates: list[float], prior: Tensor | None, alpha: float, adaptive: bool = False):
        self.rates = rates
        self.reducing = frozenset(layer for layer, rate in enumerate(rates) if rate < 1.0)
        self.prior = prior
        self.alpha = alpha
        self.adaptive = adaptive

    @property
    def per_image_counts(self) -> bool:
        return self.adaptive

    def active(self, layer: int) -> bool:
        return layer in self.reducing  # ints, not float rates: see TokenMethod.kept

    def scores(self, layer: int, state, attn) -> Tensor:
        """Fused score of every current patch, ``[B, patches]``."""
        p = state.num_prefix
        a = attn.cls_attention().mean(1)[:, p:]
        if self.prior is None or self.alpha == 1.0:
            return a
        prior = self.prior[layer].to(a.device, a.dtype)
        return fuse_scores(a, prior[(state.pos[:, p:] - p).clamp_min(0)], self.alpha)

    def reduce(self, layer, x, state, attn):
        scores = self.scores(layer, state, attn)
        if self.adaptive:
            valid = None if state.valid is None else state.valid[:, state.num_prefix :]
            return keep_topk(x, state, scores, mass_counts(scores, self.rates[layer], valid))
        return keep_topk(x, state, scores, self.kept(layer, state.num_patches, self.rates[layer]))

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        """Token counts of the static variant (the adaptive one's depend on each image: an upper bound)."""
        counts, n = [], spec.num_patches
        for layer, rate in enumerate(self.rates):
            after = n if self.adaptive else self.kept(layer, n, rate)
            counts.append((n + spec.num_prefix, after + spec.num_prefix))
            n = after
        return counts


def _rate(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"star: {name}={value!r} is invalid; allowed: a rate in (0, 1]")
    return float(value)


@register(STAR.name, STAR.summary)
def build(spec: VitSpec, **config) -> STAR:
    from vitprune.calibrate.artifact import load_calibration

    check_options("star", config, ("prior", "alpha", "r_min", "rates", "adaptive", "macs"), knob="r_min")
    adaptive = bool(config.get("adaptive", False))
    if adaptive and config.get("macs") is not None:
        raise ValueError("star: macs= solves the static variant; with adaptive=True give r_min= or rates=")
    require_class_token("star", spec)
    alpha = config.get("alpha", 0.3)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise ValueError(f"star: alpha={alpha!r} is invalid; allowed: 0..1 (weight of the CLS attention)")
    calibration = load_calibration(config["prior"], spec) if config.get("prior") is not None else None
    if calibration is None and alpha < 1:
        raise ValueError(
            "star: prior= (a calibration file from `vitprune calibrate`) is needed unless alpha=1"
        )
    prior = None if calibration is None else calibration.prior
    if config.get("rates") is not None:
        rates = [_rate(r, "rates") for r in config["rates"]]
        if len(rates) != spec.depth:
            raise ValueError(f"star: {len(rates)} rates for a model of {spec.depth} blocks")
        return STAR(rates, prior, float(alpha), adaptive)
    if calibration is None:
        raise ValueError("star: without prior= give explicit rates= (ACS rates come from the calibration)")

    def make(r_min: float) -> STAR:
        return STAR(acs_rates(calibration.acs, r_min), prior, float(alpha), adaptive)

    if config.get("macs") is not None:
        target = parse_macs_target(config["macs"], spec)
        lowest = method_macs(make(1e-3), spec)
        if target < lowest * 0.98:
            raise reach_error("star", config["macs"], target, lowest, spec)
        return make(bisect(lambda r: method_macs(make(r), spec), 1e-3, 1.0, target))
    return make(_rate(config.get("r_min", 0.6), "r_min"))
