"""Per-step learning rate: linear warm-up, then cosine decay, a pure function of the step index."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    During the first ``warmup_steps`` steps it rises linearly to ``base_lr``
    (reaching it on the last warm-up step); afterwards it follows half a cosine
    from ``base_lr`` down to ``min_lr``, which the final step reaches.
    Being stateless, resuming at any step gives the same value as never stopping.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = (step - warmup_steps) / max(decay_steps - 1, 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))
