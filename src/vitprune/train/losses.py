"""Training losses: the supervised base loss and DeiT-style distillation from a teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, tau: float = 1.0) -> torch.Tensor:
    """Distillation loss of ``student`` logits towards ``teacher`` logits (both ``[B, classes]``).

    ``"hard"``: cross-entropy to the teacher's arg-max class (DeiT's hard distillation).
    ``"soft"``: ``KL(softmax(teacher / tau) || softmax(student / tau)) * tau**2``,
    averaged over the batch (Hinton et al.; the tau² keeps gradients comparable across tau).
    """
    if kind == "hard":
        return F.cross_entropy(student, teacher.argmax(dim=-1))
    if kind == "soft":
        log_p_student = F.log_softmax(student / tau, dim=-1)
        log_p_teacher = F.log_softmax(teacher / tau, dim=-1)
        return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * tau * tau
    raise ValueError(f"unknown distillation {kind!r}; allowed: 'hard', 'soft'")


def base_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy to class indices (with label smoothing), or to soft targets from mixup/cutmix.

    Mixed targets already carry the smoothing (timm's ``Mixup`` applies it), so soft
    targets use plain soft-target cross-entropy.
    """
    if targets.dim() == 2:
        return SoftTargetCrossEntropy()(logits, targets)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def combined_loss(
    outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    *,
    label_smoothing: float,
    distill: str,
    weight: float,
    tau: float,
) -> torch.Tensor:
    """``(1 - weight) * base + weight * distill``, or just ``base`` without distillation.

    ``outputs`` is either the model's logits or, for a distilled DeiT in distilled
    training mode, ``(cls_logits, dist_logits)``: the base loss then uses the class
    head and the distillation loss the distillation head.
    """
    cls_logits, dist_logits = outputs if isinstance(outputs, tuple) else (outputs, outputs)
    base = base_loss(cls_logits.float(), targets, label_smoothing)
    if distill == "none":
        return base
    if teacher_logits is None:
        raise ValueError(f"distill={distill!r} needs teacher logits")
    extra = distill_loss(dist_logits.float(), teacher_logits.float(), distill, tau)
    return (1.0 - weight) * base + weight * extra
