"""Random baseline: drop random patches where EViT drops its least attended ones — certain.

The same blocks (default 3, 6, 9 of 12) and the same counts as EViT without its fused token (so
``macs=`` lands where ``topk``'s does), but the patches kept are chosen at random, seeded and
content-keyed so that an image always keeps the same patches, whatever batch it comes in:
- each image's key is a hash of the pixels its patch embedding sees, on a grid of 2^-20 (scaling by a
  power of two and rounding are exact, so no kernel, device or batch changes them): a sum over pixels
  of value × a seeded per-pixel weight, modulo the prime 2^31 − 1; no batch index, no host read;
- a patch's score in a block is a scramble of (key, block, original position, seed), with the
  position in its lowest bits, so no two patches of an image ever tie (a whole number below 2^51,
  exact in float64).
Every residue stays below 2^31 and every product below 2^62: no int64 overflow anywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitprune.methods.base import check_options, register
from vitprune.methods.evit import EViT, solve_rates
from vitprune.tokens.select import keep_topk
from vitprune.vit import VitSpec

PRIME = 2_147_483_647  # 2^31 - 1
POSITIONS = 1 << 20  # room for a token's original index below its scramble in a score
QUANTUM = 2.0**20  # pixel values are hashed on a grid of 1 / QUANTUM
ROUNDS = ((1_103_515_245, 12_345), (1_664_525, 1_013_904_223), (22_695_477, 1))  # odd multipliers < 2^31


def scramble(x: Tensor, salt: int) -> Tensor:
    """Residues ``x`` (int64 in [0, 2^31)) mixed with ``salt``: affine steps modulo the prime with
    xor-shifts between them (nonlinear, so neighbouring inputs land far apart)."""
    for a, b in ROUNDS:
        x = (x * a + b + salt) % PRIME
        x = x ^ (x >> 15)
    return x


def image_keys(pixels: Tensor, seed: int) -> Tensor:
    """One int64 key per image of ``pixels`` [B, ...] from its values (to 2^-20) and ``seed``."""
    flat = pixels.detach().float().flatten(1)  # float32 holds fp16/bf16 values exactly
    steps = (flat * QUANTUM).round().clamp(-(2.0**30), 2.0**30).to(torch.int64) % PRIME
    weights = scramble(torch.arange(flat.shape[1], device=flat.device), seed) + 1
    return scramble((steps * weights % PRIME).sum(1) % PRIME, seed)


def patch_scores(keys: Tensor, layer: int, pos: Tensor, seed: int) -> Tensor:
    """Distinct scores [B, N] for the patches of original positions ``pos`` in block ``layer``: whole
    numbers below 2^51, exact in float64 (the dtype every top-k takes)."""
    x = (keys[:, None] + scramble(pos, layer + 1)) % PRIME
    return (scramble(x, seed) * POSITIONS + pos).double()


class RandomTokens(EViT):
    name = "random"
    summary = "random baseline: drop random patches (seeded per image) at EViT's blocks and counts"
    _keys: Tensor | None = None

    def __init__(self, rates: dict[int, float], seed: int = 0):
        super().__init__(rates, fuse=False)
        self.seed = seed

    def see(self, pixels: Tensor) -> None:
        """Called with the pixels each forward embeds (``tokens/inputs.py``): the images' keys."""
        self._keys = image_keys(pixels, self.seed)

    def reduce(self, layer, x, state, attn):
        scores = patch_scores(self._keys, layer, state.pos[:, state.num_prefix :], self.seed)
        return keep_topk(x, state, scores, self.kept(layer, state.num_patches, self.rates[layer]))


def _check_seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < PRIME:
        raise ValueError(f"random: seed={value!r} is invalid; allowed: an int in [0, {PRIME})")
    return value


@register(RandomTokens.name, RandomTokens.summary, baseline=True)
def build(spec: VitSpec, **config) -> RandomTokens:
    check_options("random", config, ("keep", "layers", "macs", "seed"), knob="keep")
    seed = _check_seed(config.get("seed", 0))
    rates = solve_rates("random", spec, {k: v for k, v in config.items() if k != "seed"}, fuse=False)
    return RandomTokens(rates, seed)
