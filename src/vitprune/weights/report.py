"""Per-layer and per-module report of a weight-pruned model: sparsity, nonzero params, theoretical MACs.

What DIMAP (He et al., ICLR 2024, §4.1) reports, made explicit: parameters are counted as
nonzero entries and MACs "theoretically", i.e. a Linear costs its tokens × its nonzero weights
(its dense MACs × its density), although dense kernels still multiply by the zeros. Everything
here is JSON-serialisable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vitprune.measure.macs import macs as dense_macs
from vitprune.weights.counting import example_images, linear_tokens, nonzero_params, zero_macs
from vitprune.weights.modules import MODULES, layers

THEORETICAL = (
    "theoretical: zero weights are counted as saved MACs; dense kernels still spend the time on them"
)

STRUCTURED = "structured: heads and hidden units removed; dense_* are the original model's counts"


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


@torch.no_grad()
def totals(model: nn.Module, images: Tensor, tokens: dict[str, float] | None = None) -> dict:
    """Whole-model counts per image: parameters (all, nonzero) and MACs (dense, theoretical).

    ``tokens`` (from :func:`vitprune.weights.counting.linear_tokens` on ``images``) saves a pass.
    """
    tokens = tokens if tokens is not None else linear_tokens(model, images)
    dense = dense_macs(model, images).mean
    params = sum(p.numel() for p in model.parameters())
    nonzero = nonzero_params(model)
    theoretical = dense - zero_macs(model, tokens)
    return {
        "params": params,
        "nonzero_params": nonzero,
        "params_removed_fraction": _share(params - nonzero, params),
        "dense_macs": dense,
        "theoretical_macs": theoretical,
        "theoretical_macs_removed_fraction": _share(dense - theoretical, dense),
        "input_size": list(images.shape[1:]),
    }


@torch.no_grad()
def build_report(model: nn.Module, images: Tensor | None = None, modules=MODULES) -> dict:
    """``{"label", "layers": [...], "modules": {...}, "prunable": {...}, "model": {...}}`` of ``model``.

    Read from the model's current weights (apply the masks first). Per layer: module, shape,
    dense/nonzero params, sparsity, tokens per image, dense and theoretical MACs per image.
    ``prunable`` sums the selected modules' weights (the base of ``params=`` targets); ``model``
    counts all parameters and the whole forward pass (see :func:`totals`).
    """
    images = images if images is not None else example_images(model)
    tokens = linear_tokens(model, images)
    rows = []
    for layer in layers(model, modules):
        weight = layer.linear.weight
        dense, nonzero, seen = weight.numel(), int(torch.count_nonzero(weight)), tokens.get(layer.name, 0.0)
        rows.append(
            {
                "name": layer.name,
                "module": layer.module,
                "shape": list(weight.shape),
                "dense_params": dense,
                "nonzero_params": nonzero,
                "sparsity": _share(dense - nonzero, dense),
                "tokens": seen,
                "dense_macs": seen * dense,
                "theoretical_macs": seen * nonzero,
            }
        )
    return _assembled(THEORETICAL, rows, totals(model, images, tokens))


def _assembled(label: str, rows: list[dict], whole: dict) -> dict:
    per_module = {
        m: _sum([r for r in rows if r["module"] == m]) for m in dict.fromkeys(r["module"] for r in rows)
    }
    return {"label": label, "layers": rows, "modules": per_module, "prunable": _sum(rows), "model": whole}


def against_original(shrunk: dict, original: dict) -> dict:
    """The report of a structured (shrunk) model, ``shrunk``, whose ``dense_*`` columns hold the original
    model's counts from its report ``original`` (same layer names), so ``sparsity`` is the share of each
    layer's weights removed with its heads and units, and ``theoretical_macs`` what it really runs."""
    before = {r["name"]: r for r in original["layers"]}
    rows = []
    for row in shrunk["layers"]:
        dense, dense_macs_ = before[row["name"]]["dense_params"], before[row["name"]]["dense_macs"]
        removed = _share(dense - row["nonzero_params"], dense)
        rows.append({**row, "dense_params": dense, "sparsity": removed, "dense_macs": dense_macs_})
    return _assembled(STRUCTURED, rows, shrunk["model"])


def _sum(rows: list[dict]) -> dict:
    """Totals of a list of layer rows, with the sparsity and MACs fraction they imply."""
    dense = sum(r["dense_params"] for r in rows)
    nonzero = sum(r["nonzero_params"] for r in rows)
    dense_macs_ = sum(r["dense_macs"] for r in rows)
    theoretical = sum(r["theoretical_macs"] for r in rows)
    return {
        "layers": len(rows),
        "dense_params": dense,
        "nonzero_params": nonzero,
        "sparsity": _share(dense - nonzero, dense),
        "dense_macs": dense_macs_,
        "theoretical_macs": theoretical,
        "theoretical_macs_removed_fraction": _share(dense_macs_ - theoretical, dense_macs_),
    }
