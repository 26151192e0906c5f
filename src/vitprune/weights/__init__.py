"""Weight pruning: DIMAP (He et al., "Data-independent Module-aware Pruning for Hierarchical
Vision Transformers", ICLR 2024) on timm Swin and ViT, with a structured and a 2:4 variant.

    masks = dimap_masks(model, params=0.5)       # one threshold per module (QKV-M, PRJ-M, MLP-M)
    apply_masks(model, masks)                     # zeros in place; the model stays stock timm
    save_pruned(model, masks, "out/", build_report(model), make_meta("swin_tiny_patch4_window7_224", {}))
"""

from vitprune.models.saved import load_shrunk
from vitprune.weights.counting import nonzero_macs, nonzero_params
from vitprune.weights.dimap import apply_masks, dimap_masks
from vitprune.weights.io import load_masks, load_pruned, make_meta, save_pruned, save_shrunk
from vitprune.weights.keeper import MaskKeeper
from vitprune.weights.modules import gather
from vitprune.weights.nm import nm_masks
from vitprune.weights.report import build_report
from vitprune.weights.scores import weight_scores
from vitprune.weights.structured import shrink

__all__ = [
    "MaskKeeper",
    "apply_masks",
    "build_report",
    "dimap_masks",
    "gather",
    "load_masks",
    "load_pruned",
    "load_shrunk",
    "make_meta",
    "nm_masks",
    "nonzero_macs",
    "nonzero_params",
    "save_pruned",
    "save_shrunk",
    "shrink",
    "weight_scores",
]
