"""Resize baseline: the dense model on its input resized to a smaller patch grid — certain.

The yardstick a token method has to beat at equal MACs: nothing is pruned or merged, the image is
simply seen at a lower resolution (Haurum et al. 2023 and arXiv 2510.07143 ask for it first). The
model keeps taking its original input size: ``tokens/inputs.py`` resizes each input (bilinear,
antialiased) to the grid times the patch size, and the family's library resamples the position
embedding for that grid (timm's ``dynamic_img_size``, Hugging Face's ``interpolate_pos_encoding``,
RoPE built for the grid by Eva); families that cannot do so faithfully (BEiT) are refused.

How ``macs=`` maps to a grid: the candidates are, for every height h up to the model's, the widths
just below and just above h · (model's width / height), so a square 14 × 14 model may run at
10 × 10, 10 × 11, 11 × 11, ...; the grid whose MACs are nearest the target wins (the smaller on a
tie). ``grid=`` sets it directly (an int for a square grid, or (h, w)).
"""

from __future__ import annotations

import math
from dataclasses import replace

from vitprune.methods.base import TokenMethod, check_options, register
from vitprune.methods.target import closest, method_macs, parse_macs_target
from vitprune.vit import VitSpec


def at_grid(spec: VitSpec, grid: tuple[int, int]) -> VitSpec:
    """``spec`` of the same model at patch grid ``grid`` (the patch embedding costs the same per patch)."""
    n = grid[0] * grid[1]
    return replace(spec, num_patches=n, embed_macs=spec.embed_macs // spec.num_patches * n, grid=grid)


def candidate_grids(native: tuple[int, int]) -> list[tuple[int, int]]:
    """For every height up to the model's, the widths just below and above its aspect ratio."""
    gh, gw = native
    grids = set()
    for h in range(1, gh + 1):
        w = math.floor(h * gw / gh)
        grids.update((h, v) for v in (w, w + 1) if 1 <= v <= gw)
    return sorted(grids, key=lambda g: (g[0] * g[1], g))


class Resize(TokenMethod):
    name = "resize"
    summary = "resize baseline: the dense model on its input resized (antialiased) to a smaller patch grid"

    def __init__(self, size: tuple[int, int], native: tuple[int, int]):
        self.size = size  # the patch grid the model runs at
        self.grid = None if size == native else size  # what tokens/inputs.py resizes to (None: nothing)

    def active(self, layer: int) -> bool:
        return False  # every block runs its library's own forward, on fewer tokens

    def reduce(self, layer, x, state, attn):
        return x, state

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        n = self.size[0] * self.size[1] + spec.num_prefix
        return [(n, n)] * spec.depth


def _check_grid(value: object, native: tuple[int, int]) -> tuple[int, int]:
    grid = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(grid, list | tuple) and len(grid) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in grid)
    if not ok or not (1 <= grid[0] <= native[0] and 1 <= grid[1] <= native[1]):
        raise ValueError(
            f"resize: grid={value!r} is invalid; allowed: an int or (h, w) with 1 <= h <= {native[0]}, "
            f"1 <= w <= {native[1]} (the model's patch grid)"
        )
    return tuple(grid)


@register(Resize.name, Resize.summary, baseline=True)
def build(spec: VitSpec, **config) -> Resize:
    check_options("resize", config, ("grid", "macs"), knob="grid")
    if config.get("macs") is None:
        return Resize(_check_grid(config.get("grid", spec.grid), spec.grid), spec.grid)
    target = parse_macs_target(config["macs"], spec)
    grids = candidate_grids(spec.grid)

    def cost(grid: tuple[int, int]) -> float:
        return method_macs(Resize(grid, spec.grid), spec)

    return Resize(closest(grids, cost, target, config["macs"]), spec.grid)
