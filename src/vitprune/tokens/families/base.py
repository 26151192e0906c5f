"""What the token core needs to know about one model family, and nothing else.

An adapter (one per family: timm's VisionTransformer, Hugging Face's ViT-style and CLIP-style
encoders) says where the blocks, the attention's q/k/v projections, the prefix tokens, the patch
embedding and the heads are, and how to call a block's own modules in two halves: the attention
residual (norm, attention with an additive mask, LayerScale, drop-path) and the MLP residual. The
core (``tokens/patch.py``) puts the reduction between the halves; the methods never see a family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from vitprune.tokens.attention import AttentionView


def linear_macs(modules: Iterable[nn.Module]) -> int:
    """MACs per token of the ``nn.Linear`` among ``modules`` (in_features × out_features each)."""
    return sum(m.in_features * m.out_features for m in modules if isinstance(m, nn.Linear))


def original_class(module: nn.Module) -> type:
    """The module's class as its library made it, whether or not vitprune patched it."""
    return getattr(type(module), "_vp_original_class", type(module))


def pooled_state(module: nn.Module):
    """The token state of what pooling after the blocks reads: None when that is the restored full grid
    (dense outputs), where every patch counts once (a merged token as often as the patches it holds)."""
    ctx = module._vp_ctx
    return None if ctx.dense.output else ctx.state


def pool_bias(module: nn.Module, dtype, n: int) -> Tensor | None:
    """The additive mask ``[B, 1, 1, N]`` an attention pool gives the tokens it reads: log(size), so a
    merged token weighs as the patches it holds (proportional attention, Bolya et al., ICLR 2023,
    §3), and -inf for padding, for the last ``n`` tokens; None while every token is one unpadded patch."""
    state = pooled_state(module)
    bias = None if state is None else state.attention_bias(dtype, proportional=True)
    return None if bias is None else bias[..., -n:]  # timm's pools may read the patches only


@dataclass(frozen=True)
class AnyGrid:
    """How a model takes an input of another patch grid, the way its own library does: attributes to
    set while it does (``(module, name, value)``, restored after) and keyword arguments for its forward."""

    attributes: tuple[tuple[nn.Module, str, object], ...] = ()
    kwargs: dict = field(default_factory=dict)


class UnsupportedModelError(TypeError):
    """The model is not one a token method can patch."""


class Family(ABC):
    """Adapter for one model family. Subclasses are stateless; one instance serves every model."""

    supported: str  # one line for error messages: which models, which options
    # True where blocks take per-token positions from the model (RoPE): a block may then run its own
    # forward only while no token was removed.
    positional: bool = False

    @abstractmethod
    def claims(self, model: nn.Module) -> bool:
        """Whether ``model`` is of this family (a cheap class test; ``check`` says if it is usable)."""

    def check(self, model: nn.Module) -> None:
        """Raise ``UnsupportedModelError`` saying why, unless ``model`` can be patched faithfully."""
        for i, blk in enumerate(self.blocks(model)):
            original = original_class(blk)
            if original not in self.block_classes(model):
                raise UnsupportedModelError(
                    f"block {i} is {original.__name__}; token methods know this family's "
                    f"{', '.join(c.__name__ for c in self.block_classes(model))}. Supported: {self.supported}"
                )

    @abstractmethod
    def block_classes(self, model: nn.Module) -> tuple[type, ...]:
        """The block classes whose forward this adapter's two halves reproduce."""

    @abstractmethod
    def blocks(self, model: nn.Module) -> Sequence[nn.Module]: ...

    @abstractmethod
    def num_prefix(self, model: nn.Module) -> int:
        """Tokens before the patches (class, distillation, register tokens): never reduced."""

    @abstractmethod
    def has_class_token(self, model: nn.Module) -> bool: ...

    @abstractmethod
    def patch_embed(self, model: nn.Module) -> nn.Conv2d:
        """The convolution that turns pixels into patch tokens."""

    @abstractmethod
    def default_img_size(self, model: nn.Module) -> tuple[int, int]: ...

    @abstractmethod
    def head_macs(self, model: nn.Module) -> int:
        """MACs spent once per image after the blocks (classifier heads, an attention pool's query)."""

    def pool_macs_per_token(self, model: nn.Module) -> int:
        """MACs per token leaving the last block that pooling costs (an attention-pool's keys and
        values); 0 for class-token and average pooling."""
        return 0

    @abstractmethod
    def attention(self, blk: nn.Module) -> nn.Module: ...

    @abstractmethod
    def mlp(self, blk: nn.Module) -> nn.Module: ...

    @abstractmethod
    def projections(self, blk: nn.Module) -> tuple[nn.Module, ...]:
        """The linear layers whose outputs hold q, k and v (captured while a block reduces)."""

    def attn_dim(self, blk: nn.Module) -> int:
        """Heads × head_dim: one N×N attention product costs N²·attn_dim MACs."""
        return sum(p.out_features for p in self.projections(blk)) // 3

    @abstractmethod
    def view(
        self, blk: nn.Module, outputs: list[Tensor], bias: Tensor | None, state, extra: dict
    ) -> AttentionView:
        """The attention view from the captured ``projections`` outputs, in their order; ``state`` is
        the tokens' state and ``extra`` the keyword arguments the model passed to the block."""

    @abstractmethod
    def attend(self, blk: nn.Module, x: Tensor, mask: Tensor | None, state, extra: dict) -> Tensor:
        """``x`` plus the block's attention branch, ``mask`` the additive SDPA mask [B, 1, 1, N]."""

    @abstractmethod
    def feed(self, blk: nn.Module, x: Tensor) -> Tensor:
        """``x`` plus the block's MLP branch."""

    def swapped(self, model: nn.Module) -> None:
        """Called once the model's class is the patched subclass: tell the library about the new class
        where it keys something on the class (nothing for most families)."""
        return None

    def overrides(self, model: nn.Module) -> list[tuple[nn.Module, dict[str, Callable]]]:
        """Modules outside the blocks that need other methods while patched (pooling by token
        size), each with its replacement methods; the model itself is always swapped."""
        return [(model, {})]

    def any_grid(self, model: nn.Module, grid: tuple[int, int]) -> AnyGrid:
        """What lets ``model`` take an input resized to patch grid ``grid`` (the ``resize`` baseline),
        position embeddings resampled by its library; an error saying why where that is not faithful."""
        raise UnsupportedModelError(f"{type(model).__name__} cannot take an input of another size")
