"""SaiT (reconstructed) dense/sparse training: one set of weights trained at several token densities.

Each step runs the dense forward (sparsification skipped) and a sparse forward at a keep ratio drawn
from ``keeps`` on the same weights (the abstract's weight sharing across densities), and sums

    CE(dense) + CE(sparse) + kd · KL(dense-or-teacher ‖ sparse) + attn · KL(deep CLS attn ‖ early scores)

With a teacher, the dense pass also learns the teacher's logits (kd · KL(teacher ‖ dense)), which
anchors dense mode to the model the training started from.
The two distillation terms are our reading of "knowledge distillation to enhance token selection in
early transformer modules": (i) the sparse pass learns the dense pass's (or a teacher's) logits;
(ii) the early selector's CLS attention learns the deep layer's CLS attention of the dense pass, so it
picks the tokens deep layers need. ``alternate=True`` runs dense and sparse on alternating steps
instead of summing. The draw uses torch's global generator, which checkpoints save and restore.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitprune.methods.sait import SaiT
from vitprune.tokens.attention import AttentionView
from vitprune.train.losses import base_loss, distill_loss


class _ClsAttention:
    """Captures the CLS attention (mean over heads, patches only) of chosen blocks during a forward."""

    def __init__(self, model: nn.Module, layers: Sequence[int]):
        self.model, self.layers, self.rows = model, layers, {}

    def __enter__(self):
        prefix = self.model.num_prefix_tokens

        def hook(layer):
            attn = self.model.blocks[layer].attn

            def capture(module, args, output):
                self.rows[layer] = AttentionView(attn, output, None).cls_attention().mean(1)[:, prefix:]

            return capture

        self.handles = [self.model.blocks[i].attn.qkv.register_forward_hook(hook(i)) for i in self.layers]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


class DenseSparseObjective:
    """The ``objective`` for :func:`vitprune.train.fit` that trains a model patched with ``sait``."""

    def __init__(
        self,
        model: nn.Module,
        keeps: Sequence[float] = (0.5, 0.6, 0.7),
        kd: float = 1.0,
        attn: float = 0.0,
        tau: float = 1.0,
        alternate: bool = False,
        label_smoothing: float = 0.1,
    ):
        method = getattr(model, "sait", None)
        if not isinstance(method, SaiT):
            raise ValueError(
                "dense/sparse training needs a model patched with vitprune.apply(model, 'sait', ...)"
            )
        for k in keeps:
            if not 0 < k <= 1:
                raise ValueError(f"sait: keep ratio {k!r} in keeps is invalid; allowed: (0, 1]")
        self.model, self.method, self.keeps = model, method, tuple(keeps)
        self.kd, self.attn, self.tau = kd, attn, tau
        self.alternate, self.label_smoothing = alternate, label_smoothing
        self.steps = 0

    def __call__(
        self, net: nn.Module, images: Tensor, targets: Tensor, teacher_logits: Tensor | None
    ) -> Tensor:
        setting = (self.method.mode, self.method.keep)
        dense_step = not self.alternate or self.steps % 2 == 0
        sparse_step = not self.alternate or self.steps % 2 == 1
        self.steps += 1
        try:
            loss = torch.zeros((), device=images.device)
            dense_logits = None
            if dense_step or self.kd > 0 and teacher_logits is None:
                self.method.set(mode="dense")
                early, deep = self.method.layers[0], len(self.model.blocks) - 1
                with _ClsAttention(self.model, (early, deep) if self.attn > 0 else ()) as rows:
                    dense_logits = net(images)
                if dense_step:
                    loss = loss + base_loss(dense_logits.float(), targets, self.label_smoothing)
                    if self.kd > 0 and teacher_logits is not None:
                        loss = loss + self.kd * distill_loss(
                            dense_logits.float(), teacher_logits.float(), "soft", self.tau
                        )
                    if self.attn > 0:
                        loss = loss + self.attn * _kl(rows.rows[deep].detach(), rows.rows[early])
            if sparse_step:
                keep = self.keeps[int(torch.randint(len(self.keeps), ()))]
                self.method.set(mode="ratio", keep=keep)
                sparse_logits = net(images).float()
                loss = loss + base_loss(sparse_logits, targets, self.label_smoothing)
                if self.kd > 0:
                    reference = teacher_logits if teacher_logits is not None else dense_logits.detach()
                    loss = loss + self.kd * distill_loss(sparse_logits, reference.float(), "soft", self.tau)
            return loss
        finally:
            self.method.set(mode=setting[0], keep=setting[1])


def _kl(target: Tensor, scores: Tensor) -> Tensor:
    """KL(target ‖ scores) over patches, both renormalised to sum 1, averaged over the batch."""
    p = target / target.sum(1, keepdim=True)
    q = scores / scores.sum(1, keepdim=True)
    return F.kl_div(q.clamp_min(1e-12).log(), p, reduction="batchmean")
