"""``vitprune prune``: DIMAP weight pruning (He et al., ICLR 2024) and our structured / 2:4 variants.

The main CLI mounts it with :func:`add_prune_arguments` (plus the shared model options) and
:func:`run_prune`. ``--params-removed 0.5`` removes half of the prunable weights (the selected modules'
Linear weights); ``--macs`` is what the pruned model keeps, as for every method: ``--macs 0.63``
leaves 0.63x the dense model's theoretical MACs, ``--macs 2.9G`` leaves 2.9 GMACs.
"""

from __future__ import annotations

import argparse

import vitprune.cli.values as values
import vitprune.zoo as zoo
from vitprune.cli.options import model_kwargs
from vitprune.models.load import load_model
from vitprune.weights.counting import example_images
from vitprune.weights.dimap import SCOPES, apply_masks, check_fraction, check_target, dimap_masks
from vitprune.weights.io import check_out_dir, make_meta, save_pruned, save_shrunk
from vitprune.weights.modules import check_modules
from vitprune.weights.nm import PATTERNS, nm_masks
from vitprune.weights.report import against_original, build_report, totals
from vitprune.weights.structured import STRUCTURED_SCOPES, STRUCTURES, shrink


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitprune prune`` (the model options come from ``add_model_arguments``)."""
    g = parser.add_argument_group("pruning (DIMAP, He et al. ICLR 2024)")
    g.add_argument("--method", choices=("dimap",), default="dimap", help="weight-pruning method")
    target = g.add_mutually_exclusive_group()
    target.add_argument(
        "--params-removed",
        type=values.fraction_removed,
        help="share of the prunable weights to REMOVE, in (0, 1): 0.3 keeps 70%% of them (no default: give "
        "this or --macs)",
    )
    target.add_argument("--params", type=_ambiguous_params, help=argparse.SUPPRESS)
    target.add_argument(
        "--macs",
        type=values.macs,
        help="MACs the pruned model KEEPS, as for every method: a fraction of dense (0.63) or '2.9G'",
    )
    g.add_argument(
        "--scope",
        choices=SCOPES,
        default="module",
        help="one threshold per module (DIMAP, default), one for the whole model, or the same "
        "sparsity in every layer (uniform magnitude)",
    )
    g.add_argument("--modules", default="qkv,proj,mlp", help="modules to prune (default: %(default)s)")
    g.add_argument(
        "--structure",
        choices=("none", *STRUCTURES),
        default="none",
        help="neuron-head: remove whole MLP units and attention heads so the model really gets "
        "smaller and faster (beyond the paper; takes --params-removed; --scope layer cuts the same share "
        "in every block, which on Swin removes more MACs than the module-aware default)",
    )
    g.add_argument(
        "--pattern",
        choices=("none", *PATTERNS),
        default="none",
        help="2:4: keep the 2 best-scored of every 4 consecutive input weights (GPU sparse kernels; "
        "fixes the sparsity at 50%%, no target)",
    )
    g.add_argument("--out", required=True, help="new output directory (written whole or not at all)")


def _ambiguous_params(text: str):
    """``--params`` is refused: every other target says what the model keeps, DIMAP's what it removes."""
    raise argparse.ArgumentTypeError(
        f"{text!r}: --params is ambiguous (--macs says what the model keeps); for the share of prunable "
        f"weights removed write --params-removed {text}"
    )


def _check(args: argparse.Namespace) -> tuple[str, dict]:
    """Validate the option combination before any work; returns (variant, target)."""
    check_modules(args.modules)
    if args.structure != "none" and args.pattern != "none":
        raise ValueError("--structure and --pattern exclude each other")
    if args.pattern != "none":
        if args.params_removed is not None or args.macs is not None or args.scope != "module":
            raise ValueError(
                f"--pattern {args.pattern} fixes the sparsity: drop --params-removed/--macs/--scope"
            )
        return "pattern", {"pattern": args.pattern}
    if args.structure != "none":
        if args.macs is not None:
            raise ValueError(
                f"--structure {args.structure} takes --params-removed only (the fraction of prunable weights "
                f"removed), not --macs {args.macs!r}"
            )
        if args.scope not in STRUCTURED_SCOPES:
            raise ValueError(
                f"--structure {args.structure} takes --scope {' or '.join(STRUCTURED_SCOPES)} "
                f"(got --scope {args.scope})"
            )
        return "structure", {"params": check_fraction("--params-removed", args.params_removed)}
    kind, value = check_target(args.params_removed, args.macs)
    return "masks", {kind: value}


def run_prune(args: argparse.Namespace) -> dict:
    """Prune ``args.model`` as the options say, write ``args.out`` and return a summary."""
    variant, target = _check(args)
    out = check_out_dir(args.out)
    kwargs = model_kwargs(args.model_kwargs)
    model = load_model(args.model, args.pretrained, args.checkpoint, args.num_classes, **kwargs)
    name, arch_kwargs = zoo.architecture(args.model, kwargs)
    if args.num_classes is not None:
        arch_kwargs["num_classes"] = args.num_classes
    images = example_images(model)
    meta = make_meta(
        name,
        arch_kwargs,
        method=args.method,
        target=target,
        scope=args.scope,
        modules=args.modules,
        structure=args.structure,
        pattern=args.pattern,
        source=args.checkpoint or args.model,
    )
    if variant == "structure":
        dense, original = totals(model, images), build_report(model, images, args.modules)
        sizes = shrink(model, target["params"], args.structure, args.modules, args.scope)
        shrunk = build_report(model, images, args.modules)
        report = {**against_original(shrunk, original), "dense_model": dense}
        save_shrunk(model, sizes, out, report, meta)
    else:
        if variant == "pattern":
            masks = nm_masks(model, args.pattern, args.modules)
        else:
            masks = dimap_masks(model, scope=args.scope, modules=args.modules, images=images, **target)
        apply_masks(model, masks)
        report = build_report(model, images, args.modules)
        save_pruned(model, masks, out, report, meta)
    return _summary(out, variant, target, report)


def _summary(out, variant: str, target: dict, report: dict) -> dict:
    """What the command prints: per-module table, then whole-model and prunable totals."""
    whole = report["model"]
    summary = {
        "out": str(out),
        "variant": variant,
        "target": target,
        "modules": [
            {"module": m, **{k: v for k, v in row.items() if k != "theoretical_macs_removed_fraction"}}
            for m, row in report["modules"].items()
        ],
        "prunable_sparsity": report["prunable"]["sparsity"],
        "params": whole["params"],
        "nonzero_params": whole["nonzero_params"],
        "params_removed_fraction": whole["params_removed_fraction"],
        "theoretical_macs": whole["theoretical_macs"],
        "theoretical_macs_removed_fraction": whole["theoretical_macs_removed_fraction"],
    }
    if "dense_model" in report:
        dense = report["dense_model"]
        summary["params_removed_fraction"] = 1 - whole["params"] / dense["params"]
        summary["theoretical_macs_removed_fraction"] = 1 - whole["dense_macs"] / dense["dense_macs"]
    return summary
