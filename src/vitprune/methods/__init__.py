"""Token methods; importing this package registers each one."""

from vitprune.methods import evit, ppt, random_tokens, resize, sait, star, tome, topk
from vitprune.methods.base import BASELINES, REGISTRY, TokenMethod

__all__ = [
    "BASELINES",
    "REGISTRY",
    "TokenMethod",
    "evit",
    "ppt",
    "random_tokens",
    "resize",
    "sait",
    "star",
    "tome",
    "topk",
]
