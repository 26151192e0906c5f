"""Dense outputs: what one forward keeps so that any block's output can be read on the full grid.

``model.vitprune.dense`` is this object. Before every reduction the patched block snapshots the
restored grid (``tokens/restore.py``), so each patch dropped there keeps the value it had after that
block's attention residual; a block a caller asked for (``take``) records its restored output in
``taken``; with ``output`` on, the last block hands on the restored grid itself, so the model's own
final norm, pooling and heads see one token per patch (``vitprune.apply(..., dense=True)``). Until
the first reducing block no state exists and the restored grid is the block's output itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from vitprune.tokens.restore import fill, resample
from vitprune.tokens.state import TokenState


@dataclass
class Dense:
    """Dense-output settings of a patched model and what its current forward has restored."""

    depth: int
    num_prefix: int
    output: bool = False  # the last block hands on the restored grid (apply's ``dense=True``)
    # the ``resize`` baseline: (the grid it runs at, the model's own grid) its features are resampled to
    resampled: tuple[tuple[int, int], tuple[int, int]] | None = None
    take: frozenset[int] = frozenset()  # blocks whose restored outputs a caller asked for
    final: bool = False  # ``output`` for the forward a caller asked for (``collect``)
    taken: dict[int, Tensor] = field(default_factory=dict, repr=False)
    carried: Tensor | None = field(default=None, repr=False)  # [B, N0, C]: values dropped tokens keep

    @property
    def on(self) -> bool:
        """Whether this forward restores anything (and so traces which tokens each one holds)."""
        return self.output or self.final or bool(self.take)

    def snapshot(self, x: Tensor, state: TokenState, start: TokenState) -> None:
        """Before a reduction: every original token's current restored value (``state is start``: no
        token removed yet this forward, so nothing carried from an earlier one)."""
        self.carried = fill(x, state, None if state is start else self.carried)

    def leave(self, layer: int, x: Tensor, state: TokenState | None) -> Tensor:
        """Block ``layer``'s output ``x``: recorded restored where asked for; the restored grid itself
        leaves the last block when ``output`` is on, else ``x``."""
        last = layer == self.depth - 1
        handed = (self.output or self.final) and last
        if layer in self.take or handed:
            full = self.grid(x if state is None else fill(x, state, self.carried))
            if layer in self.take:
                self.taken[layer] = full
            x = full if handed else x
        if last:
            self.carried = None  # read for the last time: not kept alive until the next forward
        return x

    def grid(self, full: Tensor) -> Tensor:
        """``full`` (the grid the blocks ran on) on the model's own grid: resampled for ``resize``."""
        if self.resampled is None:
            return full
        return resample(full, self.num_prefix, *self.resampled)

    def collect(self, take, final: bool = False) -> None:
        """Ask, for the next forward, for the restored outputs of the blocks ``take`` (and with
        ``final`` for the restored grid to leave the last block, as ``output`` does)."""
        self.take, self.final, self.taken = frozenset(take), final, {}

    def collected(self) -> dict[int, Tensor]:
        """The restored outputs asked for, by block; asks for nothing more."""
        taken, self.take, self.final, self.taken = self.taken, frozenset(), False, {}
        return taken
