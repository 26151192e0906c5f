"""A segmenter's predictions beside its tokens: per canvas, the input, the true label map, the dense
model's prediction, the tokens left after the method's last reducing block and the prediction made
from the grid restored from them (dense outputs), so one sees what a dropped or merged patch costs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor, nn

from vitprune.segment.head import pixel_logits
from vitprune.viz.api import denormalise
from vitprune.viz.record import record_token_maps
from vitprune.viz.render import draw_cell, to_display

BACKGROUND_COLOUR = "#101010"
COLUMNS = ("input", "truth", "dense", "tokens", "restored")


def palette(classes: int) -> ListedColormap:
    """Class ``i`` in matplotlib's colour ``C{i % 10}``; the last class (background) near black."""
    return ListedColormap([f"C{i % 10}" for i in range(classes - 1)] + [BACKGROUND_COLOUR])


@torch.inference_mode()
def predict(model: nn.Module, inputs: Tensor, size: tuple[int, int]) -> np.ndarray:
    """Per-pixel classes ``[B, H, W]`` of a segmenter on ``inputs``."""
    return pixel_logits(model(inputs).float(), model.num_prefix_tokens, size).argmax(1).cpu().numpy()


def save_segmentation_maps(
    model: nn.Module,
    dense: nn.Module,
    inputs: Tensor,
    truth: Tensor,
    out: str | os.PathLike,
    class_names: list[str],
    title: str,
) -> Path:
    """Write the PNG for ``model`` (a segmenter patched with ``trace_source=True, dense=True``) against
    ``dense`` (the same segmenter without a method) on ``inputs`` with true maps ``truth`` ([B, H, W])."""
    size = tuple(truth.shape[-2:])
    maps = record_token_maps(model, inputs)
    last = maps.layers[-1]
    predicted, reference = predict(model, inputs, size), predict(dense, inputs, size)
    display = to_display(denormalise(inputs, model).numpy())
    colours = palette(len(class_names))
    rows = len(inputs)
    fig = Figure(figsize=(1.3 * len(COLUMNS) + 1.9, 1.35 * rows + 1.2))
    axes = fig.subplots(rows, len(COLUMNS), squeeze=False)
    for r in range(rows):
        panels = (display[r], truth[r].numpy(), reference[r], None, predicted[r])
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if c == 3:
                groups, fused = last.groups[r].cpu().numpy(), last.fused[r].cpu().numpy()
                draw_cell(ax, display[r], groups, fused, maps.grid)
            elif c == 0:
                ax.imshow(panel, interpolation="nearest")
            else:
                ax.imshow(panel, cmap=colours, vmin=0, vmax=len(class_names) - 1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c] if c != 3 else f"tokens after\nblock {last.layer}", fontsize=8)
    handles = [Patch(color=colours(i), label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.9 / (1.35 * rows + 1.2), 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
