"""Token methods; importing this package registers each one."""

from vitprune.methods import evit, tome
from vitprune.methods.base import REGISTRY, TokenMethod

__all__ = ["REGISTRY", "TokenMethod", "evit", "tome"]
