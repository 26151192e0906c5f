"""The ``vitprune`` command: ``main`` wires the verbs; ``options`` and ``report`` serve every verb."""

from vitprune.cli.main import main

__all__ = ["main"]
