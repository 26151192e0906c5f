"""Per-forward token state: what each current token stands for.

Every token carries
- ``pos``: its original index in the token sequence (prefix tokens first, then patches in raster
  order). A merged token keeps the position of the token it was merged into; a fused token that
  stands for many dropped patches has position -1. Eager, a reduction only notes which tokens it
  kept and the positions are gathered when first read: a forward nobody reads them in spends no
  call on them (issue 33).
- ``size``: how many original tokens it represents (``None`` while every size is 1, which keeps the
  unpatched fast path: no attention bias at all).
- ``source`` (only when tracing): a ``[B, N, N0]`` boolean map of which original tokens it contains.
  A patch whose column is all False was dropped, which is different from "merged into group 0".
- ``valid`` (only once images keep different numbers of tokens): ``[B, N]``, False for padding.
  Padding is excluded from every key by the attention mask, so a real token never sees it, and it
  is not counted in the MACs; the batch is as long as its longest image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vitprune.tokens.cache import constant


class TokenState:
    """What each current token stands for (module docstring); ``pos`` may arrive deferred."""

    def __init__(
        self,
        num_prefix: int,
        pos: Tensor | LaterPositions,  # [B, N] long
        size: Tensor | None = None,  # [B, N, 1], dtype of the activations
        source: Tensor | None = None,  # [B, N, N0] bool
        valid: Tensor | None = None,  # [B, N] bool, False for padding
    ):
        self.num_prefix, self._pos, self.size, self.source, self.valid = num_prefix, pos, size, source, valid
        # attention_bias's last answer, (dtype, proportional, bias, per key): blocks that keep the tokens
        # reuse it; per key is the [B, N, 1] tensor the bias is a view of, or None
        self._bias: tuple | None = None

    @property
    def pos(self) -> Tensor:
        """Original index of each token, ``[B, N]`` long (gathered here if a reduction deferred it)."""
        if isinstance(self._pos, LaterPositions):
            self._pos = self._pos.read()
        return self._pos

    def gathered_pos(self, idx: Tensor) -> Tensor | LaterPositions:
        """Positions of the tokens ``idx`` ([B, K] or [B, K, 1]), for a new state: eager, deferred
        until read; compiled, gathered now (the graph drops what nobody reads)."""
        if torch.compiler.is_compiling():
            return self.pos.gather(1, flat(idx) if idx.dim() == 3 else idx)
        return LaterPositions(self._pos, idx)

    @classmethod
    def start(cls, x: Tensor, num_prefix: int, trace_source: bool = False) -> TokenState:
        """State for the tokens entering the first block: every token is itself."""
        b, n, _ = x.shape
        pos = constant(("pos", b, n, x.device), lambda: torch.arange(n, device=x.device).expand(b, n))
        source = torch.eye(n, dtype=torch.bool, device=x.device).expand(b, n, n) if trace_source else None
        return cls(num_prefix=num_prefix, pos=pos, source=source)

    @property
    def num_tokens(self) -> int:
        return self._pos.shape[1]

    @property
    def num_patches(self) -> int:
        return self.num_tokens - self.num_prefix

    def sizes(self, like: Tensor) -> Tensor:
        """Sizes as a ``[B, N, 1]`` tensor (ones when nothing was merged yet)."""
        if self.size is not None:
            return self.size
        return ones(like.shape[0], like.shape[1], like)

    def counts(self) -> Tensor:
        """Real (non-padding) tokens per image, ``[B]``."""
        if self.valid is None:
            return torch.full((self._pos.shape[0],), self.num_tokens, device=self._pos.device)
        return self.valid.sum(1)

    def attention_bias(self, dtype: torch.dtype, proportional: bool) -> Tensor | None:
        """The additive SDPA mask ``[B, 1, 1, N]`` every key gets: log(size) for proportional
        attention, and -inf for padding. ``None`` when neither applies (the unpatched fast path).
        Computed once per state and dtype: the blocks between two reductions share it."""
        if self._bias is not None and self._bias[:2] == (dtype, proportional):
            return self._bias[2]
        bias = per_key = None
        if proportional and self.size is not None:
            b, n, _ = self.size.shape
            size = self.size if self.size.dtype == dtype else self.size.to(dtype)
            per_key = size.log()  # sizes carry no gradient (merges detach them)
            bias = per_key.view(b, 1, 1, n)
        if self.valid is not None:
            pad = torch.zeros(self.valid.shape, dtype=dtype, device=self.valid.device)
            pad = pad.masked_fill(~self.valid, float("-inf"))[:, None, None]
            bias, per_key = (pad if bias is None else bias + pad), None
        if not torch.compiler.is_compiling():
            self._bias = (dtype, proportional, bias, per_key)
        return bias

    def bias_per_key(self, bias: Tensor | None) -> Tensor | None:
        """``bias`` (this state's :meth:`attention_bias`) as ``[B, N, 1]``, one value per key, where it
        is a view of such a tensor the state holds (eager, no padding): no call; else None."""
        if bias is not None and self._bias is not None and self._bias[2] is bias:
            return self._bias[3]
        return None

    def gather(self, idx: Tensor) -> TokenState:
        """Keep the tokens ``idx`` ([B, K] indices into the current tokens), in that order."""
        return TokenState(
            self.num_prefix,
            self.gathered_pos(idx),
            size=None if self.size is None else self.size.gather(1, rows(idx, 1)),
            source=None if self.source is None else _gather_rows(self.source, idx),
            valid=None if self.valid is None else self.valid.gather(1, idx),
        )


class LaterPositions:
    """Positions a reduction kept but has not gathered: ``pos.gather(1, idx)``, done once when read."""

    def __init__(self, pos: Tensor | LaterPositions, idx: Tensor):
        self._from, self._idx = pos, idx
        self.shape, self.device = tuple(idx.shape[:2]), idx.device

    def read(self) -> Tensor:
        if isinstance(self._from, LaterPositions):
            self._from = self._from.read()
        if self._idx is not None:  # once: what it gathered replaces what it gathered from
            idx, self._idx = self._idx, None
            self._from = self._from.gather(1, flat(idx) if idx.dim() == 3 else idx)
        return self._from


def ones(b: int, n: int, like: Tensor) -> Tensor:
    """A shared ``[b, n, 1]`` tensor of ones in ``like``'s dtype and device (never written into)."""
    key = ("ones", b, n, like.dtype, like.device)
    return constant(key, lambda: torch.ones(b, n, 1, dtype=like.dtype, device=like.device))


def _gather_rows(t: Tensor, idx: Tensor) -> Tensor:
    return t.gather(1, rows(idx, t.shape[-1]))


def rows(idx: Tensor, width: int) -> Tensor:
    """``idx`` ([B, K], or [B, K, 1]) as a ``[B, K, width]`` index of whole rows, for gather/scatter.

    Eager, one ``as_strided`` view (an unsqueeze and an expand cost four aten calls); compiled, the
    plain ``expand``, which every backend and exporter knows."""
    b, k = idx.shape[:2]
    if torch.compiler.is_compiling():
        return idx.reshape(b, k, 1).expand(b, k, width)
    return idx.as_strided((b, k, width), (idx.stride(0), idx.stride(1), 0))


def flat(idx: Tensor) -> Tensor:
    """A ``[B, K, 1]`` index as ``[B, K]`` (one view)."""
    if torch.compiler.is_compiling():
        return idx[..., 0]
    return idx.as_strided(idx.shape[:2], idx.stride()[:2])


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """``x[b, idx[b]]`` for ``x`` of shape [B, N, C] and ``idx`` of shape [B, K] or [B, K, 1]."""
    return _gather_rows(x, idx)


def keep_count(rate: float, n: int) -> int:
    """Tokens kept from ``n`` at keep-rate ``rate``: ceil(rate · n), as EViT and STAR round."""
    return min(n, math.ceil(rate * n - 1e-9))
