"""Draw token maps with matplotlib: one row per image, one column per reducing block (plus the input).

In each cell, a patch still held by its own token shows the image; tokens that hold several patches
are filled with the mean colour of those patches; every token's outline is drawn; dropped patches
are black and hatched. Images are shown slightly lifted from black so that only dropped patches
are pure black. Rows are labelled with PPT's per-image branch (P = pruned, M = merged/pooled) or,
for input-adaptive methods, with the number of patch tokens each image keeps.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vitprune.viz.groups import DROPPED
from vitprune.viz.record import TokenMaps

LIFT = 0.15  # darkest shown image value, so that pure black means "dropped"
EDGE = "#00d8ff"
FUSED = "#ff9f1c"
LEGEND = (
    "outlines: one token each · filled with mean colour: patches merged into one token · "
    "black, hatched: dropped"
)


def cell_image(image: np.ndarray, groups: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``image`` ([H, W, 3] in 0..1) with merged groups flattened to their mean colour and dropped
    patches black; ``groups`` is the ``[patches]`` group map."""
    gh, gw = grid
    h, w, c = image.shape
    ph, pw = h // gh, w // gw
    blocks = image[: gh * ph, : gw * pw].reshape(gh, ph, gw, pw, c).transpose(0, 2, 1, 3, 4).copy()
    blocks = blocks.reshape(gh * gw, ph, pw, c)
    means = blocks.mean(axis=(1, 2))
    for g in np.unique(groups[groups != DROPPED]):
        members = groups == g
        if members.sum() > 1:
            blocks[members] = means[members].mean(0)
    blocks[groups == DROPPED] = 0.0
    out = image.copy()
    out[: gh * ph, : gw * pw] = (
        blocks.reshape(gh, gw, ph, pw, c).transpose(0, 2, 1, 3, 4).reshape(gh * ph, gw * pw, c)
    )
    return out


def _edges(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where neighbouring patches ``a`` and ``b`` lie in different tokens, not both dropped."""
    return np.argwhere((a != b) & ((a != DROPPED) | (b != DROPPED)))


def boundaries(groups: np.ndarray, grid: tuple[int, int], patch: tuple[int, int]) -> list:
    """Line segments between neighbouring patches of different tokens (not between two dropped)."""
    g = groups.reshape(grid)
    ph, pw = patch
    vertical = [
        [((c + 1) * pw - 0.5, r * ph - 0.5), ((c + 1) * pw - 0.5, (r + 1) * ph - 0.5)]
        for r, c in _edges(g[:, 1:], g[:, :-1])
    ]
    horizontal = [
        [(c * pw - 0.5, (r + 1) * ph - 0.5), ((c + 1) * pw - 0.5, (r + 1) * ph - 0.5)]
        for r, c in _edges(g[1:], g[:-1])
    ]
    return vertical + horizontal


def _rectangles(mask: np.ndarray, grid: tuple[int, int], patch: tuple[int, int]) -> list[Rectangle]:
    """One rectangle per horizontal run of masked patches (fewer shapes for matplotlib to hatch)."""
    ph, pw = patch
    rows = mask.reshape(grid).astype(np.int8)
    edges = np.diff(np.pad(rows, ((0, 0), (1, 1))), axis=1)  # +1 where a run starts, -1 past its end
    out = []
    for r in range(grid[0]):
        starts, stops = np.flatnonzero(edges[r] == 1), np.flatnonzero(edges[r] == -1)
        out += [
            Rectangle((a * pw - 0.5, r * ph - 0.5), (b - a) * pw, ph)
            for a, b in zip(starts, stops, strict=True)
        ]
    return out


def draw_cell(ax, image: np.ndarray, groups: np.ndarray, fused: np.ndarray, grid: tuple[int, int]) -> None:
    """One token map on ``ax``: ``image`` ([H, W, 3]) under the tokens of ``groups`` ([patches])."""
    patch = (image.shape[0] // grid[0], image.shape[1] // grid[1])
    ax.imshow(cell_image(image, groups, grid), interpolation="nearest")
    ax.add_collection(LineCollection(boundaries(groups, grid, patch), colors=EDGE, linewidths=0.6))
    dropped = _rectangles(groups == DROPPED, grid, patch)
    ax.add_collection(PatchCollection(dropped, facecolor="none", edgecolor="#555555", hatch="////", lw=0))
    if fused.any():
        marks = _rectangles(fused, grid, patch)
        ax.add_collection(PatchCollection(marks, facecolor="none", edgecolor=FUSED, hatch="..", lw=0))
    ax.set_xticks([])
    ax.set_yticks([])


def row_label(maps: TokenMaps, row: int, name: str) -> str:
    """``name`` plus PPT's branch per PPT block, or the kept count of an input-adaptive method."""
    lines = [name]
    if maps.branches:
        branches = sorted(maps.branches.items())
        lines.append(" ".join(f"b{layer}:{'M' if bool(pooled[row]) else 'P'}" for layer, pooled in branches))
    if maps.adaptive:
        lines.append(f"kept {int(maps.layers[-1].counts[row])}/{maps.num_patches}")
    return "\n".join(lines)


def _column_title(maps: TokenMaps, column: int) -> str:
    layer = maps.layers[column]
    if layer.layer < 0:
        return f"input\n{maps.num_patches} patches"
    if maps.adaptive:
        return f"after block {layer.layer}\n≤{int(layer.counts.max())} tokens"
    return f"after block {layer.layer}\n{int(layer.counts.max())} tokens"


def _legend(maps: TokenMaps) -> str:
    parts = [LEGEND]
    if any(bool(layer.fused.any()) for layer in maps.layers):
        parts.append("orange dots: fused token (EViT)")
    if maps.branches:
        parts.append("bN:P = pruned at block N, bN:M = merged (pooled)")
    if maps.adaptive:
        parts.append("small numbers: patch tokens this image keeps")
    return " · ".join(parts)


def to_display(images: np.ndarray) -> np.ndarray:
    """``[B, C, H, W]`` images in 0..1 → ``[B, H, W, 3]`` RGB lifted so black is reserved for dropped."""
    rgb = np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images[:, :3]
    return LIFT + (1 - LIFT) * np.clip(rgb, 0, 1).transpose(0, 2, 3, 1)


def render_token_maps(
    maps: TokenMaps,
    images: np.ndarray,
    out: str | os.PathLike,
    names: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the grid for ``maps`` over ``images`` (``[B, C, H, W]`` in 0..1) to ``out`` (PNG)."""
    display = to_display(images)
    rows, cols = len(display), len(maps.layers)
    names = names or [f"image {i}" for i in range(rows)]
    width = 1.25 * cols + 1.6
    chars = int(width * 14)  # characters per line of 8-point text
    legend = textwrap.fill(_legend(maps), chars)
    heading = textwrap.fill(title or f"{maps.method}: tokens after each reducing block", int(chars / 1.4))
    footer = (legend.count("\n") + 1) * 0.16 + 0.1
    header = (heading.count("\n") + 1) * 0.22 + 0.5
    height = 1.35 * rows + footer + header
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        for c, layer in enumerate(maps.layers):
            ax = axes[r, c]
            draw_cell(ax, display[r], layer.groups[r].cpu().numpy(), layer.fused[r].cpu().numpy(), maps.grid)
            if r == 0:
                ax.set_title(_column_title(maps, c), fontsize=8)
            if maps.adaptive and c > 0:
                ax.set_xlabel(str(int(layer.counts[r])), fontsize=7, labelpad=1)
        axes[r, 0].set_ylabel(row_label(maps, r, names[r]), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(heading, fontsize=11)
    fig.text(0.5, 0.01, legend, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, footer / height, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
