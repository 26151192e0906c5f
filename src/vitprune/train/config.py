"""Training hyper-parameters as one validated, JSON-friendly dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16")
DISTILL_KINDS = ("none", "hard", "soft")


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`vitprune.train.fit` needs besides the model and the data.

    The learning rate follows a per-step schedule: linear warm-up over
    ``warmup_epochs`` to ``lr``, then a cosine decay to ``min_lr`` at the last step.
    ``distill_weight`` w mixes the losses as ``(1 - w) * base + w * distill``.
    ``eval_every`` evaluates every that many epochs (and always after the last one)
    when an evaluation loader is given. Invalid values raise ``ValueError`` at
    construction, naming the field, the value and what is allowed.
    """

    epochs: int
    lr: float
    weight_decay: float = 0.05
    warmup_epochs: float = 0.0
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    clip_grad: float | None = None
    precision: str = "fp32"
    distill: str = "none"
    distill_weight: float = 0.5
    distill_tau: float = 1.0
    eval_every: int = 1
    seed: int = 0

    def __post_init__(self):
        checks = [
            ("epochs", self.epochs > 0, "an int > 0"),
            ("lr", self.lr > 0, "a number > 0"),
            ("weight_decay", self.weight_decay >= 0, "a number >= 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, f"0..epochs ({self.epochs})"),
            ("min_lr", 0 <= self.min_lr <= self.lr, f"0..lr ({self.lr})"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "0 <= value < 1"),
            ("mixup", self.mixup >= 0, "a Beta alpha >= 0 (0 disables mixup)"),
            ("cutmix", self.cutmix >= 0, "a Beta alpha >= 0 (0 disables cutmix)"),
            ("clip_grad", self.clip_grad is None or self.clip_grad > 0, "None or a max norm > 0"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("distill", self.distill in DISTILL_KINDS, f"one of {DISTILL_KINDS}"),
            ("distill_weight", 0 <= self.distill_weight <= 1, "0..1"),
            ("distill_tau", self.distill_tau > 0, "a temperature > 0"),
            ("eval_every", self.eval_every >= 1, "an int >= 1"),
        ]
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool):
            raise ValueError(f"TrainConfig: epochs={self.epochs!r} is invalid; allowed: an int > 0")
        for name, ok, allowed in checks:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"TrainConfig: {name}={value!r} is invalid; allowed: {allowed}")

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (mixup or cutmix), which turns targets into soft labels."""
        return self.mixup > 0 or self.cutmix > 0

    def to_dict(self) -> dict:
        """Plain-dict form, as stored in checkpoints."""
        return dataclasses.asdict(self)
