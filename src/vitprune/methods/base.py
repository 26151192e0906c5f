"""What every token method is, and the registry ``vitprune.apply`` looks methods up in.

A method is a small object with one job: given a block index, the tokens after the attention
residual, their state and a view of the attention, return fewer tokens. It also predicts its own
token schedule, so a ``macs=`` target can be solved analytically before any forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from torch import Tensor

from vitprune.tokens.attention import AttentionView
from vitprune.tokens.state import TokenState, keep_count
from vitprune.vit import VitSpec


class TokenMethod(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    prop_attn: bool = False
    # True where each image keeps its own token count (padded, masked): shapes then depend on the data.
    per_image_counts: bool = False
    _kept: dict[tuple[int, int], int] | None = None
    _spec: VitSpec | None = None

    @abstractmethod
    def active(self, layer: int) -> bool:
        """Whether block ``layer`` reduces tokens (inactive blocks run exactly as timm's)."""

    @abstractmethod
    def reduce(self, layer: int, x: Tensor, state: TokenState, attn: AttentionView):
        """Return ``(x, state)`` with fewer tokens, or unchanged."""

    @abstractmethod
    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        """Predicted (tokens into attention, tokens into MLP) per block, prefix tokens included."""

    def plan(self, spec: VitSpec) -> None:
        """Fix the token counts for the model ``spec`` describes before any forward (see ``kept``)."""
        self._spec, self._kept = spec, None
        self.schedule(spec)

    def kept(self, layer: int, n: int, rate: float) -> int:
        """``keep_count(rate, n)``: patches block ``layer`` keeps of ``n``, memoised per (layer, n).

        ``vitprune.apply`` calls ``plan``, which fills the memo for the model's own input size, so a
        forward under ``torch.compile`` reads token counts as ints. Traced from a float
        rate instead, a count turns symbolic as soon as a second compiled model (or a new SaiT
        density) changes that float, and every shape after it with it. The memo assumes the rates
        of a method object do not change; a method whose rates do (SaiT's ``set``) plans again.
        """
        if self._kept is None:
            self._kept = {}
        key = (layer, n)
        if key not in self._kept:
            self._kept[key] = keep_count(rate, n)
        return self._kept[key]


Builder = Callable[..., TokenMethod]
REGISTRY: dict[str, tuple[Builder, str]] = {}
# Yardsticks rather than methods (a smaller input, random tokens, top-K): plots and tables set them apart.
BASELINES: set[str] = set()


def register(name: str, summary: str, baseline: bool = False):
    """Decorator: ``builder(spec, **config) -> TokenMethod`` becomes available as ``name``."""

    def wrap(builder: Builder) -> Builder:
        REGISTRY[name] = (builder, summary)
        if baseline:
            BASELINES.add(name)
        return builder

    return wrap


def check_layer(value: int, depth: int, what: str = "layer") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < depth:
        raise ValueError(f"{what} {value!r} is outside the model: allowed 0..{depth - 1}")
    return value


def check_options(method: str, config: dict, allowed: tuple[str, ...], knob: str) -> None:
    """Only ``allowed`` options, and not both the method's ``knob`` and a ``macs=`` target."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"{method}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    if config.get(knob) is not None and config.get("macs") is not None:
        raise ValueError(
            f"{method}: give {knob}= or macs=, not both ({knob}={config[knob]!r}, macs={config['macs']!r})"
        )


def check_count(method: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{method}: {name}={value!r} is invalid; allowed: an int >= 0")
    return value


def require_class_token(method: str, spec: VitSpec) -> None:
    if not spec.has_class_token:
        raise ValueError(f"{method} scores tokens by CLS attention; this model has class_token=False")
