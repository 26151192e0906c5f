"""Token methods; importing this package registers each one."""

from vitprune.methods import evit, ppt, sait, star, tome
from vitprune.methods.base import REGISTRY, TokenMethod

__all__ = ["REGISTRY", "TokenMethod", "evit", "ppt", "sait", "star", "tome"]
