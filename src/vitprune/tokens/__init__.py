"""Shared token machinery: pure tensor functions and the per-forward token state. No method knowledge."""

from vitprune.tokens.state import TokenState

__all__ = ["TokenState"]
