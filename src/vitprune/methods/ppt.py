"""PPT: adaptive token Pruning & Pooling (Wu et al., arXiv 2310.01812; seed 003) — certain (authors' code).

In blocks 3, 6, 9 (0-indexed; the same quarters of the depth in other models) each image removes
exactly ``r`` patch tokens (capped at half), choosing its own way per block:
- importance (from ATS): s_j = Σ_heads A[cls→j] · ‖v_j‖, normalised to sum 1 over the patches;
- if the unbiased variance of s over the patches is below ``threshold`` the scores are flat, the
  redundancy is duplication, and the image **pools**: ToMe's bipartite matching on keys with
  size-weighted merging; otherwise it **prunes**: keeps the top patches by s, discarding the rest.
Both branches remove the same count, so a batch stays rectangular whichever branch each image
takes. Proportional attention is on (sizes exist after pooling). Threshold 0 always prunes; a huge
threshold always pools. The paper's 7e-5 (6e-5 for fine-tuning) is tied to 196 patches: scores that
sum to 1 over N patches have mean 1/N, so the same relative spread has a variance that scales as
1/N². The default threshold is therefore 7e-5 · (196 / N)² for a model with N patches at its input
(exactly the paper's on DeiT at 224 px; ours, for other grids), i.e. pool when the squared
coefficient of variation N²·var of the scores is below 7e-5 · 196² ≈ 2.69; it is fixed per model,
as the paper's is, while later blocks see fewer patches. An explicit ``threshold=`` is used as given.
``macs=`` solves ``r`` for any model and input size instead, spreading the removals over the PPT blocks as
ToMe spreads its merges (earlier blocks take the odd ones), so with ``layers=range(depth)`` a
threshold that pools every image is exactly ToMe at the same MACs. On a model with few patches
(Fashion-MNIST's 7×7 grid) the scores' variances run 1e-3…4e-1: at 7e-5 every image prunes; at the
default (1.12e-3 there) 28%, 32% and 12% of the test images pool at blocks 3, 6, 9 (2,000 images,
``macs=0.63``: top-1 77.8 against 76.6 at 7e-5). Removing r at three blocks still costs far more
than spreading it over every block; there a threshold
near 1.5e-2 pools most images and lets the few with peaked late-block scores prune, matching ToMe
at the same MACs (``benchmarks/results/ppt_fmnist.json``). The scaling fixes the token count, not the
data: on ``fmnist-vit-196`` (196 patches, so the paper's 7e-5) 98% of the test images prune at
block 3 (top-1 80.5), while 1e-3, chosen on training images, pools most and matches ToMe
(``ppt_threshold_fmnist196.json``, ``ppt_fmnist196.json``).

Token order follows the authors' code: pooling is ToMe's bipartite split over the whole sequence
(``tokens.select.bipartite_merge``), pruning keeps the survivors by descending score after the
prefix, and both orders feed the next PPT block's split. Differences, deliberate: prefix tokens
(distillation, registers) are protected, not only CLS; the CLS row is computed alone and attention
stays fused; every image's two branches are computed and one is picked per image with
``torch.where`` (no host sync; the authors split the batch with ``nonzero``), except eager on the
CPU, where no device waits: the variances are computed on the host (float64) and a batch computes only
the branches its images take. Pruning ranks the unnormalised scores (the same order).
After each forward, ``method.branches[layer]`` holds True for the images that pooled and
``method.variances[layer]`` the score variance each image was judged by (for choosing a threshold).
"""

from __future__ import annotations

import numpy as np
import torch

from vitprune.methods.base import (
    TokenMethod,
    check_count,
    check_layer,
    check_options,
    register,
    require_class_token,
)
from vitprune.methods.evit import default_layers
from vitprune.methods.target import closest, method_macs, parse_macs_target
from vitprune.methods.tome import spread
from vitprune.tokens.cache import scalar
from vitprune.tokens.select import bipartite_merge, keep_topk
from vitprune.tokens.state import TokenState
from vitprune.vit import VitSpec

DEFAULT_R = 50
PAPER_THRESHOLD = 7e-5  # off the shelf, DeiT at 224 px
PAPER_PATCHES = 196


def default_threshold(spec: VitSpec) -> float:
    """The paper's threshold carried to ``spec``'s patch count: ``7e-5 · (196 / N)²``."""
    return PAPER_THRESHOLD * (PAPER_PATCHES / spec.num_patches) ** 2


def importance(attn, num_prefix: int) -> torch.Tensor:
    """ATS importance of the patches, ``[B, patches]``, before the paper's normalisation to sum 1 per
    image, which changes no ranking; :func:`score_variance` applies it."""
    return attn.cls_scores(heads="sum", start=num_prefix, by_value=True)


def score_variance(scores: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the patches of ``scores`` normalised to sum 1, ``[B, 1]``."""
    return torch.var_mean(scores / scores.sum(1, keepdim=True), 1, keepdim=True)[0]


def host_variance(scores: torch.Tensor) -> np.ndarray:
    """:func:`score_variance` of a CPU tensor, ``[B]``, computed on the host in float64 from the scores
    read through DLPack: eager, no dispatcher call (the tensor ops spend six, issue 33)."""
    s = np.from_dlpack(scores.detach() if scores.requires_grad else scores).astype(np.float64)
    return (s / s.sum(1, keepdims=True)).var(1, ddof=1)


def select_rows(pick: torch.Tensor, a, b):
    """Per image, ``a`` where ``pick`` else ``b``: for tensors or TokenStates of equal shapes."""
    if isinstance(a, TokenState):
        return TokenState(
            num_prefix=a.num_prefix,
            pos=select_rows(pick, a.pos, b.pos),
            size=select_rows(pick, a.size, b.size),
            source=None if a.source is None else select_rows(pick, a.source, b.source),
        )
    return torch.where(pick.view(-1, *[1] * (a.dim() - 1)), a, b)


class PPT(TokenMethod):
    name = "ppt"
    summary = "PPT: per image, prune (peaked scores) or pool (flat scores) r tokens at 3 blocks"
    prop_attn = True

    def __init__(self, rs: dict[int, int], threshold: float):
        self.rs = rs
        self.threshold = threshold
        # One key per PPT block from the start: a dict that grew keys during the first forward would
        # fail torch.compile's guard on its keys and compile the model a second time. Eager on the CPU
        # a block stores a host array (float64), else a tensor.
        self._variances: dict[int, torch.Tensor | np.ndarray | None] = dict.fromkeys(sorted(rs))

    @property
    def branches(self) -> dict[int, torch.Tensor]:
        """Per PPT block of the last forward, True for the images that pooled."""
        return {layer: self._pools(t) for layer, t in self.variances.items()}

    @property
    def variances(self) -> dict[int, torch.Tensor]:
        """Per PPT block of the last forward, the score variance each image was judged by, ``[B]``."""
        return {layer: torch.as_tensor(t).view(-1) for layer, t in self._variances.items() if t is not None}

    def _pools(self, variance: torch.Tensor) -> torch.Tensor:
        """True for the images whose score variance is below the threshold (they pool)."""
        return variance < scalar(self.threshold, variance)

    def active(self, layer: int) -> bool:
        return self.rs.get(layer, 0) > 0

    def reduce(self, layer, x, state, attn):
        p = state.num_prefix
        r = min(self.rs[layer], state.num_patches // 2)
        if r == 0:  # a single patch left: nothing to remove, and its score variance is undefined
            return x, state
        scores = importance(attn, p)

        def prune(tokens):
            return keep_topk(x, tokens, scores, state.num_patches - r)

        def merge(tokens):
            return bipartite_merge(x, tokens, attn.summed_keys(), r)

        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            # Eager on the CPU, reading the scores costs no device wait: the choice is made on the host
            # and only the branches taken run.
            variance = self._variances[layer] = host_variance(scores)
            pooled = variance < self.threshold
            if not pooled.any():
                return prune(state)
            if pooled.all():
                return merge(state)
            pool = torch.from_numpy(pooled)
        else:
            variance = self._variances[layer] = score_variance(scores)
            if self.threshold <= 0:  # a variance is never below 0: every image prunes, known in advance
                return prune(state)
            pool = self._pools(variance)
        # Both branches for every image, then a per-image choice: no host sync, one graph under compile.
        sized = TokenState(p, state.pos, state.sizes(x), state.source)
        (x_pool, s_pool), (x_prune, s_prune) = merge(sized), prune(sized)
        return select_rows(pool, x_pool, x_prune), select_rows(pool, s_pool, s_prune)

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        counts, n = [], spec.num_patches
        for layer in range(spec.depth):
            after = n - min(self.rs.get(layer, 0), n // 2)
            counts.append((n + spec.num_prefix, after + spec.num_prefix))
            n = after
        return counts


@register(PPT.name, PPT.summary)
def build(spec: VitSpec, **config) -> PPT:
    check_options("ppt", config, ("r", "layers", "threshold", "macs"), knob="r")
    require_class_token("ppt", spec)
    layers = [check_layer(v, spec.depth) for v in config.get("layers", default_layers(spec.depth))]
    threshold = config.get("threshold")
    threshold = default_threshold(spec) if threshold is None else threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not threshold >= 0:  # NaN too
        raise ValueError(f"ppt: threshold={threshold!r} is invalid; allowed: a number >= 0")
    if config.get("macs") is not None:
        target = parse_macs_target(config["macs"], spec)
        candidates = [
            PPT(dict(zip(layers, spread(total, len(layers)), strict=True)), threshold)
            for total in range(len(layers) * (spec.num_patches // 2) + 1)
        ]
        return closest(candidates, lambda m: method_macs(m, spec), target, config["macs"], "ppt")
    r = config.get("r", DEFAULT_R)
    per_layer = list(r) if isinstance(r, list | tuple) else [r] * len(layers)
    if len(per_layer) != len(layers):
        raise ValueError(f"ppt: {len(per_layer)} values of r for {len(layers)} layers {layers}")
    rs = {layer: check_count("ppt", "r", v) for layer, v in zip(layers, per_layer, strict=True)}
    return PPT(rs, float(threshold))
