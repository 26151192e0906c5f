"""Structured DIMAP: remove whole attention heads and MLP hidden units, so the model gets faster.

Beyond the paper. He et al. (DIMAP, ICLR 2024) prune single weights and note that this brings no
real speed-up. Here the same data-free, module-aware scoring picks whole units instead:

* **Unit energy** (our aggregation): the sum of w² over every weight that goes with the unit:
  a head's rows in qkv (its q, k and v slices) plus its columns in proj; an MLP hidden unit's
  row in fc1 plus its column in fc2. Biases are not scored.
* **Unit score**: DIMAP's in-layer score applied to units, e_(j) / Σ_{i≤j} e_(i) with units sorted
  by energy inside one block; the block's strongest unit scores 1 and is never removed.
* **Module-aware selection**: heads of all blocks form one module, hidden units of all blocks
  another; inside a module units are removed lowest score first until the module has lost the
  requested fraction of its weights (the unit whose half-cost would overshoot is kept), so every
  module loses about the same fraction, as in :mod:`vitprune.weights.dimap`.

``params`` is the fraction of the prunable weights (qkv + proj for heads, fc1 + fc2 for units)
removed. Heads need both ``qkv`` and ``proj`` in ``modules``; units need ``mlp``.

``scope="layer"`` is the uniform ablation: every block loses the same share of its heads and of
its hidden units (weakest energy first). On Swin this matters for speed: the module-aware score
removes most from the last stage, which holds most weights but few MACs, while the uniform cut
removes MACs in proportion to weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vitprune.models.resize import check_attention, check_mlp, keep_heads, keep_neurons
from vitprune.weights.dimap import check_fraction
from vitprune.weights.modules import MODULES, check_modules, gather
from vitprune.weights.scores import rank

STRUCTURES = ("neuron-head",)
STRUCTURED_SCOPES = ("module", "layer")


@dataclass(frozen=True)
class Units:
    """The prunable units of one block: name, kind ("head" | "neuron"), energy per unit, weights per unit."""

    block: str
    kind: str
    energy: Tensor
    cost: int


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0]


def head_units(attn: nn.Module, block: str) -> Units:
    """Energy of every head of an attention block: its qkv rows plus its proj columns."""
    check_attention(attn, block)
    heads = attn.num_heads
    qkv, proj = attn.qkv.weight.detach().double(), attn.proj.weight.detach().double()
    head_dim = qkv.shape[0] // (3 * heads)
    energy = qkv.square().view(3, heads, head_dim, -1).sum((0, 2, 3))
    energy += proj.square().view(proj.shape[0], heads, head_dim).sum((0, 2))
    return Units(block, "head", energy, head_dim * (3 * qkv.shape[1] + proj.shape[0]))


def neuron_units(mlp: nn.Module, block: str) -> Units:
    """Energy of every hidden unit of an MLP block: its fc1 row plus its fc2 column."""
    check_mlp(mlp, block)
    fc1, fc2 = mlp.fc1.weight.detach().double(), mlp.fc2.weight.detach().double()
    return Units(block, "neuron", fc1.square().sum(1) + fc2.square().sum(0), fc1.shape[1] + fc2.shape[0])


def collect_units(model: nn.Module, modules=MODULES) -> list[Units]:
    """Units of every supported block, heads first, in model order."""
    modules = check_modules(modules)
    if ("qkv" in modules) != ("proj" in modules):
        raise ValueError(
            "head pruning removes qkv rows and proj columns together: give both qkv and proj, or neither"
        )
    blocks = dict(model.named_modules())
    found = gather(model, modules)
    heads = [head_units(blocks[_parent(layer.name)], _parent(layer.name)) for layer in found.get("qkv", [])]
    mlps = dict.fromkeys(_parent(layer.name) for layer in found.get("mlp", []))
    return heads + [neuron_units(blocks[name], name) for name in mlps]


def select_uniform(units: list[Units], fraction: float) -> dict[str, Tensor]:
    """Sorted indices of the units kept in each block: round(fraction · units) weakest removed, one kept."""
    kept = {}
    for u in units:
        count = u.energy.numel()
        removed = min(round(fraction * count), count - 1)
        order = rank(u.energy).order  # strongest first
        kept[u.block] = order[: count - removed].sort().values
    return kept


def select(units: list[Units], fraction: float) -> dict[str, Tensor]:
    """Sorted indices of the units kept in each block, removing ``fraction`` of each module's weights."""
    kept = {u.block: torch.arange(u.energy.numel()) for u in units}
    for kind in dict.fromkeys(u.kind for u in units):
        group = [u for u in units if u.kind == kind]
        budget = fraction * sum(u.cost * u.energy.numel() for u in group)
        scores, owner, index, cost = [], [], [], []
        for i, u in enumerate(group):
            ranked = rank(u.energy)
            candidates = ranked.order[1:].flip(0)  # weakest first; rank 0 (score 1) always stays
            scores.append(ranked.ascending[:-1])
            owner.append(torch.full_like(candidates, i))
            index.append(candidates)
            cost.append(torch.full(candidates.shape, float(u.cost), dtype=torch.float64))
        order = torch.sort(torch.cat(scores), stable=True).indices
        cost_sorted = torch.cat(cost)[order]
        take = int(((torch.cumsum(cost_sorted, 0) - cost_sorted / 2) <= budget).sum())
        owner_taken, index_taken = torch.cat(owner)[order[:take]], torch.cat(index)[order[:take]]
        for i, u in enumerate(group):
            alive = torch.ones(u.energy.numel(), dtype=torch.bool)
            alive[index_taken[owner_taken == i]] = False
            kept[u.block] = alive.nonzero().flatten()
    return kept


def shrink(
    model: nn.Module, params: float, structure: str = "neuron-head", modules=MODULES, scope: str = "module"
) -> dict[str, dict]:
    """Remove whole heads and hidden units in place; returns the kept sizes per block.

    ``scope`` is ``"module"`` (module-aware, the default) or ``"layer"`` (the same share per block).

    The returned ``{block: {"num_heads": n} | {"hidden": n}}`` is what ``structure.json`` records
    and :func:`vitprune.models.resize.apply_structure` replays on a stock model.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; allowed: {', '.join(STRUCTURES)}")
    if scope not in STRUCTURED_SCOPES:
        allowed = ", ".join(STRUCTURED_SCOPES)
        raise ValueError(f"unknown scope {scope!r} for structured pruning; allowed: {allowed}")
    fraction = check_fraction("params", params)
    units = collect_units(model, modules)
    kept = select(units, fraction) if scope == "module" else select_uniform(units, fraction)
    blocks = dict(model.named_modules())
    sizes = {}
    for u in units:
        if u.kind == "head":
            keep_heads(blocks[u.block], kept[u.block], u.block)
            sizes[u.block] = {"num_heads": int(kept[u.block].numel())}
        else:
            keep_neurons(blocks[u.block], kept[u.block], u.block)
            sizes[u.block] = {"hidden": int(kept[u.block].numel())}
    return sizes
