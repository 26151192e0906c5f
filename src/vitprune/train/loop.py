"""The training loop: AdamW, per-step cosine schedule, mixup, distillation, a checkpoint per epoch."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
import torch
from timm.data import Mixup
from timm.optim import param_groups_weight_decay
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import vitprune.train.checkpoint as checkpoint
import vitprune.train.distributed as distributed
import vitprune.train.rng as rng
from vitprune.measure.bench import precision_context
from vitprune.models.build import load_weights
from vitprune.models.device import model_device
from vitprune.train.config import TrainConfig
from vitprune.train.losses import combined_loss
from vitprune.train.rebuild import spec_to_json
from vitprune.train.schedule import lr_at
from vitprune.train.serialize import optimizer_parts, optimizer_state

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Evaluator = Callable[[nn.Module, Iterable, torch.device, str], dict]
SHOWN_METRICS = ("top1", "top5", "miou", "pixel_acc")  # what an epoch's log line reports, where measured


def fit(
    model: nn.Module,
    train_loader: Iterable,
    config: TrainConfig | None = None,
    *,
    out_dir: str | os.PathLike,
    eval_loader: Iterable | None = None,
    teacher: nn.Module | None = None,
    resume: str | os.PathLike | None = None,
    model_spec: dict | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], object] = print,
    objective: Objective | None = None,
    after_step: Callable[[], object] | None = None,
    evaluator: Evaluator | None = None,
    score: str = "top1",
    **hyper,
) -> dict:
    """Train ``model`` in place and checkpoint it into ``out_dir`` after every epoch.

    Hyper-parameters come as a :class:`TrainConfig` or as its fields in ``hyper``
    (``fit(model, loader, out_dir=d, epochs=3, lr=1e-3)``). ``train_loader`` yields
    ``(images, labels)``; it must have a length, and for an exact resume its order must
    depend only on the epoch: loaders (or their samplers) with ``set_epoch`` get it
    called each epoch (see :func:`vitprune.train.train_sampler`). ``eval_loader`` is
    evaluated every ``config.eval_every`` epochs and after the last; under torchrun it
    must shard the data (:class:`vitprune.train.ShardSampler`). ``teacher`` is required
    by distillation; it sees the student's inputs. ``resume`` names a checkpoint or an
    earlier ``out_dir``: weights, optimiser, step, history and generator states are
    restored and training continues with the next epoch, bit-identical to never stopping.
    ``model_spec`` (see :func:`vitprune.train.model_spec`) is stored so that
    :func:`vitprune.train.load_trained` can rebuild the model from the checkpoint alone.

    ``objective(net, images, targets, teacher_logits) -> loss`` replaces the default one
    forward + :func:`combined_loss` (SaiT's dense/sparse step uses it); ``after_step()`` runs after
    every optimiser step (DIMAP's fixed masks use it). ``evaluator(model, eval_loader, device,
    precision) -> metrics`` replaces top-1/top-5 (a segmenter's mIoU uses it); ``score`` names the metric
    whose highest value marks the best checkpoint.

    Under torchrun (after :func:`vitprune.train.distributed.setup`) the model is wrapped
    in ``DistributedDataParallel``; only rank 0 logs and writes checkpoints.
    Returns ``{"epochs", "global_step", "history", "metrics", "checkpoint", "best"}``: metrics
    of the last evaluation, the newest checkpoint, and the best one written by this call.
    """
    if config is None:
        config = TrainConfig(**hyper)
    elif hyper:
        raise ValueError(f"pass hyper-parameters either as config or as keywords, not both: {sorted(hyper)}")
    if config.distill != "none" and teacher is None:
        raise ValueError(f"distill={config.distill!r} needs a teacher model")
    spec = spec_to_json(model_spec)
    device = torch.device(device) if device is not None else model_device(model)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("train_loader yields no batches (dataset smaller than one batch with drop_last?)")
    say = log if distributed.is_main() else _silent
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, config.weight_decay, nwd), lr=config.lr)
    run = {"epoch": 0, "global_step": 0, "history": [], "best_score": None, "checkpoint": None, "best": None}
    if resume is not None:
        _resume(resume, model, optimizer, config, run, device, say)
    else:
        rng.seed_all(config.seed + distributed.rank())
    if config.distill != "none" and hasattr(model, "set_distilled_training"):
        model.set_distilled_training(True)
    net = _wrap(model, device)
    mixup = _mixup(config, model)
    hooks = (objective or partial(default_objective, config=config), after_step)
    try:
        for epoch in range(run["epoch"], config.epochs):
            _set_epoch(train_loader, epoch)
            start = time.perf_counter()
            loss = _train_epoch(
                net,
                model,
                teacher,
                optimizer,
                mixup,
                hooks,
                train_loader,
                config,
                run,
                device,
                progress=progress and distributed.is_main(),
                desc=f"epoch {epoch + 1}",
            )
            record = {
                "epoch": epoch + 1,
                "train_loss": loss,
                "lr": optimizer.param_groups[0]["lr"],
                "global_step": run["global_step"],
                "train_s": time.perf_counter() - start,
            }
            last_epoch = epoch + 1 == config.epochs
            if eval_loader is not None and ((epoch + 1) % config.eval_every == 0 or last_epoch):
                record["eval"] = (evaluator or distributed.evaluate_sharded)(
                    model, eval_loader, device, config.precision
                )
                model.train()
            run["history"].append(record)
            run["epoch"] = epoch + 1
            best = run["best_score"]
            improved = "eval" in record and (best is None or record["eval"][score] > best)
            if improved:
                run["best_score"] = record["eval"][score]
            _save(out_dir, model, optimizer, config, spec, run, device, improved)
            say(_describe(record, config.epochs))
    except KeyboardInterrupt:
        say(f"interrupted; last complete checkpoint: {run['checkpoint'] or 'none'}")
        raise
    metrics = next((r["eval"] for r in reversed(run["history"]) if "eval" in r), None)
    return {
        "epochs": run["epoch"],
        "global_step": run["global_step"],
        "history": run["history"],
        "metrics": metrics,
        "checkpoint": run["checkpoint"],
        "best": run["best"],
    }


def _silent(*_args) -> None:
    """Logger for non-zero ranks."""


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` under torchrun, else the model itself."""
    if not distributed.is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _mixup(config: TrainConfig, model: nn.Module) -> Mixup | None:
    """timm's batch mixer producing smoothed soft targets, when mixup or cutmix is on."""
    if not config.mixes:
        return None
    return Mixup(
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        label_smoothing=config.label_smoothing,
        num_classes=model.num_classes,
    )


def _set_epoch(loader: Iterable, epoch: int) -> None:
    """Tell the loader, or its sampler, which epoch's order to produce."""
    for owner in (loader, getattr(loader, "sampler", None)):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)
            return


def default_objective(net, images, targets, teacher_logits, *, config: TrainConfig) -> torch.Tensor:
    """One forward; the supervised loss, plus distillation when configured."""
    return combined_loss(
        net(images),
        targets,
        teacher_logits,
        label_smoothing=config.label_smoothing,
        distill=config.distill,
        weight=config.distill_weight,
        tau=config.distill_tau,
    )


def _train_epoch(net, model, teacher, optimizer, mixup, hooks, loader, config, run, device, progress, desc):
    """One pass over ``loader``; advances ``run["global_step"]`` and returns the mean loss over ranks."""
    objective, after_step = hooks
    steps_per_epoch = len(loader)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    loss_sum, batches = 0.0, 0
    for images, labels in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        lr = lr_at(run["global_step"], total_steps, warmup_steps, config.lr, config.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, targets = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if mixup is not None:
            images, targets = mixup(images, targets)
        with precision_context(device, config.precision):
            teacher_logits = None
            if config.distill != "none":
                with torch.no_grad():
                    teacher_logits = teacher(images)
            loss = objective(net, images, targets, teacher_logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        optimizer.step()
        if after_step is not None:
            after_step()
        run["global_step"] += 1
        loss_sum += loss.item()
        batches += 1
    loss_sum, batches = distributed.all_sum([loss_sum, batches], device)
    return loss_sum / max(batches, 1)


def _save(out_dir, model, optimizer, config, spec, run, device, improved) -> None:
    """Checkpoint the finished epoch (rank 0 writes; every rank contributes its generator states)."""
    states = distributed.gather(rng.capture(device))
    if distributed.is_main():
        rng_tensors = {f"rank{r}.{k}": v for r, (tensors, _) in enumerate(states) for k, v in tensors.items()}
        opt_tensors, opt_values = optimizer_parts(optimizer.state_dict())
        state = {
            "epoch": run["epoch"],
            "global_step": run["global_step"],
            "world_size": len(states),
            "config": config.to_dict(),
            "model": spec,
            "history": run["history"],
            "best_score": run["best_score"],
            "optimizer": opt_values,
            "rng": [values for _, values in states],
        }
        path = checkpoint.save(
            out_dir, run["epoch"], model.state_dict(), opt_tensors, rng_tensors, state, best=improved
        )
        run["checkpoint"] = str(path)
        if improved:
            run["best"] = str(path)
    distributed.barrier()


def _resume(source, model, optimizer, config, run, device, say) -> None:
    """Load a checkpoint into ``model``/``optimizer``/``run`` and restore this rank's generators."""
    ck = checkpoint.load(source)
    load_weights(model, ck.model, source=str(ck.path / checkpoint.MODEL_FILE))
    optimizer.load_state_dict(optimizer_state(ck.optimizer, ck.state["optimizer"]))
    for key in ("epoch", "global_step", "history"):
        run[key] = ck.state[key]
    run["best_score"] = ck.state.get("best_score", ck.state.get("best_top1"))  # the key before segmenters
    run["checkpoint"] = str(ck.path)
    changed = sorted(k for k, v in config.to_dict().items() if ck.state["config"].get(k) != v)
    if changed:
        say(f"resuming with changed settings {changed}: the run will differ from an uninterrupted one")
    rank, saved = distributed.rank(), ck.state["rng"]
    if len(saved) == distributed.world_size():
        prefix = f"rank{rank}."
        tensors = {k.removeprefix(prefix): v for k, v in ck.rng.items() if k.startswith(prefix)}
        rng.restore(tensors, saved[rank], device)
    else:
        say(
            f"checkpoint was written by {len(saved)} processes, now {distributed.world_size()}: "
            "generators are re-seeded, so the result will not be bit-identical to an uninterrupted run"
        )
        rng.seed_all(int(np.random.SeedSequence([config.seed, run["epoch"], rank]).generate_state(1)[0]))
    say(f"resumed from {ck.path} at epoch {run['epoch']} (step {run['global_step']})")


def _describe(record: dict, epochs: int) -> str:
    """One log line for a finished epoch."""
    text = f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, lr {record['lr']:.3g}"
    measured = record.get("eval", {})
    text += "".join(f", {key} {measured[key]:.2f}%" for key in SHOWN_METRICS if key in measured)
    return text + f" ({record['train_s']:.1f}s)"
