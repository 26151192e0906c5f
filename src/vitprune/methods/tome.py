"""ToMe baseline: token merging by bipartite soft matching (Bolya et al., ICLR 2023) — certain.

Every block with r > 0 merges r patch tokens (capped at half the patches entering it) by cosine
similarity of its keys averaged over heads, with size-weighted averages and proportional attention
(on by default: the paper's rule for supervised models such as DeiT/AugReg). ``r`` is an int (every
block) or a per-block list of ints (zero-padded); ``r=8, inflection=0.5`` is ToMe's schedule: a
linear ramp from r·(1−inflection) to 2r minus that. The old ``r=(8, 0.5)`` form is refused: it read
as a schedule while ``r=(8, 0)`` read as a per-block list. A ``macs=`` target is solved over the total
number of merges spread evenly across blocks (so r=13 on DeiT-S is what 2.70 GMACs gives back).
"""

from __future__ import annotations

from collections.abc import Sequence

from vitprune.methods.base import TokenMethod, check_count, check_options, register
from vitprune.methods.target import closest, method_macs, parse_macs_target
from vitprune.tokens.select import bipartite_merge
from vitprune.vit import VitSpec


def parse_r(r: int | Sequence[int], depth: int, inflection: float | None = None) -> list[int]:
    """Tokens to merge in each of ``depth`` blocks, before the per-block cap."""
    if isinstance(r, list | tuple) and any(isinstance(v, float) for v in r):
        raise ValueError(
            f"tome: r={r!r} is ambiguous (a per-block list or an (r, inflection) schedule); give a list "
            f"of ints per block, r=[8, 0], or the schedule as its own key, r=8, inflection=0.5"
        )
    if inflection is not None:
        return _ramp(check_count("tome", "r", r), inflection, depth)
    if isinstance(r, list | tuple):
        if len(r) > depth:
            raise ValueError(f"tome: r has {len(r)} entries but the model has {depth} blocks")
        return [check_count("tome", "r", v) for v in r] + [0] * (depth - len(r))
    return [check_count("tome", "r", r)] * depth


def _ramp(base: int, inflect: float, depth: int) -> list[int]:
    """ToMe's schedule: r per block rising linearly from base·(1−inflect) to 2·base minus that."""
    if isinstance(inflect, bool) or not isinstance(inflect, int | float) or not -1.0 <= inflect <= 1.0:
        raise ValueError(f"tome: inflection={inflect!r} is invalid; allowed: a number in -1.0..1.0")
    first = int(base * (1.0 - inflect))
    last = 2 * base - first
    step = (last - first) / max(depth - 1, 1)
    return [int(first + step * i) for i in range(depth)]


def spread(total: int, depth: int) -> list[int]:
    """``total`` merges over ``depth`` blocks as evenly as possible, earlier blocks taking the extra
    ones: a constant r when ``total`` divides evenly, and a MACs target finer than one r step."""
    if depth == 0:  # no block to spread over (PPT with layers=[]): nothing is removed
        return []
    base, extra = divmod(total, depth)
    return [base + 1] * extra + [base] * (depth - extra)


class ToMe(TokenMethod):
    name = "tome"
    summary = "ToMe baseline: merge r tokens per block by bipartite soft matching of keys"

    def __init__(self, per_layer: list[int], prop_attn: bool = True):
        self.per_layer = per_layer
        self.prop_attn = prop_attn

    def active(self, layer: int) -> bool:
        return self.per_layer[layer] > 0

    def reduce(self, layer, x, state, attn):
        return bipartite_merge(x, state, attn.summed_keys(), self.per_layer[layer])

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        counts, n = [], spec.num_patches
        for r in self.per_layer:
            after = n - min(r, n // 2)
            counts.append((n + spec.num_prefix, after + spec.num_prefix))
            n = after
        return counts


@register(ToMe.name, ToMe.summary)
def build(spec: VitSpec, **config) -> ToMe:
    check_options("tome", config, ("r", "inflection", "prop_attn", "macs"), knob="r")
    prop_attn = bool(config.get("prop_attn", True))
    if config.get("inflection") is not None and config.get("macs") is not None:
        raise ValueError("tome: inflection= shapes an r schedule; a macs= target sets the merges itself")
    if config.get("macs") is not None:
        target = parse_macs_target(config["macs"], spec)
        candidates = [
            ToMe(spread(total, spec.depth), prop_attn) for total in range(spec.depth * spec.num_patches // 2)
        ]
        return closest(candidates, lambda m: method_macs(m, spec), target, config["macs"], "tome")
    return ToMe(parse_r(config.get("r", 0), spec.depth, config.get("inflection")), prop_attn)
