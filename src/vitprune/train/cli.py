"""``vitprune train``: argument definitions and the command body, for the main CLI to mount.

The main parser supplies ``--model``, ``--pretrained``, ``--checkpoint``, ``--method``,
``-p/--param`` (parsed into ``args.method_config``), ``--json`` and ``--data``; this
module adds the training options and runs them, under torchrun too.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from functools import partial
from pathlib import Path

from torch import nn

import vitprune.cli.values as values
import vitprune.train.distributed as distributed
import vitprune.train.recorded as recorded
import vitprune.zoo as zoo
from vitprune.api import apply
from vitprune.data import FASHION_MNIST_NAMES, build_dataset
from vitprune.data.batched import TensorImageDataset, build_loader
from vitprune.data.fashion_mnist import has_split
from vitprune.models.build import load_backbone
from vitprune.models.load import load_model
from vitprune.models.saved import architecture, shrunk_directory
from vitprune.segment.data import segmentation_dataset
from vitprune.segment.evaluate import evaluate_segmentation
from vitprune.segment.head import segmenter_kwargs
from vitprune.segment.objective import pixel_loss
from vitprune.train.config import DISTILL_KINDS, PRECISIONS, TrainConfig
from vitprune.train.loop import fit
from vitprune.train.rebuild import load_trained, model_spec
from vitprune.train.sait import DenseSparseObjective
from vitprune.train.sampling import ShardSampler, train_sampler

FASHION_MNIST_CLASSES = 10
SEGMENT_CLASSES = FASHION_MNIST_CLASSES + 1  # fashion-mnist-clutter's label maps: ten items and background
TASKS = ("classify", "segment")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vitprune train`` options to ``parser``."""
    add = parser.add_argument
    add(
        "--out",
        metavar="DIR",
        help="output directory for checkpoints (last/, best/) and the run's options (train.json); "
        "required unless --resume names a run",
    )
    add(
        "--resume",
        metavar="RUN",
        help="continue a run exactly from its last complete checkpoint: RUN is its --out directory (or a "
        "checkpoint in it); every option not given again is the run's own (train.json), and options that "
        "would change the result (epochs, lr, data, model, ...) are refused",
    )
    add(
        "--limit",
        type=values.positive_int,
        help="train on the first N training images and evaluate on the first N test images (a quick "
        "trial; default: all)",
    )
    add(
        "--task",
        choices=TASKS,
        default="classify",
        help="segment: train a segmenter (a ViT whose head classifies every patch, global_pool='': "
        "Segmenter's linear decoder, upsampled to pixels) on --data's per-pixel labels "
        "(fashion-mnist-clutter: ten item classes and background), scored by mean IoU "
        "(default: %(default)s)",
    )
    add(
        "--backbone",
        metavar="PATH",
        help="start every weight but the classifier head from this checkpoint (e.g. a classifier's, to "
        "train a segmenter on its backbone); the head starts as built",
    )
    add("--epochs", type=values.positive_int, default=10)
    add("--batch-size", type=values.positive_int, default=128, help="per process")
    add("--lr", type=values.positive, default=5e-4, help="peak learning rate (AdamW)")
    add("--weight-decay", type=values.non_negative, default=0.05)
    add("--warmup-epochs", type=values.non_negative, default=0.0)
    add("--min-lr", type=values.non_negative, default=1e-6)
    add("--label-smoothing", type=values.smoothing, default=0.1)
    add("--mixup", type=values.non_negative, default=0.0, help="mixup Beta alpha (0: off)")
    add("--cutmix", type=values.non_negative, default=0.0, help="cutmix Beta alpha (0: off)")
    add("--clip-grad", type=values.positive, default=None, metavar="NORM")
    add("--precision", choices=PRECISIONS, default="fp32")
    add(
        "--teacher",
        metavar="NAME_OR_PATH",
        help="teacher for distillation: a vitprune train output directory, or a timm/zoo model name",
    )
    add("--teacher-checkpoint", metavar="PATH", help="weights for a --teacher given by name")
    add(
        "--teacher-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="timm.create_model argument for a --teacher given by name (repeatable)",
    )
    add("--distill", choices=DISTILL_KINDS, default="none")
    add("--distill-weight", type=values.fraction_weight, default=0.5)
    add("--distill-tau", type=values.positive, default=1.0)
    add("--seed", type=values.natural, default=0)
    add("--workers", type=values.natural, default=0, help="data loader workers (folder datasets only)")
    add("--eval-every", type=values.positive_int, default=1, metavar="EPOCHS")
    add(
        "--num-classes",
        type=values.positive_int,
        default=None,
        help=f"default: {FASHION_MNIST_CLASSES} for Fashion-MNIST",
    )
    add(
        "--model-kwargs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="timm.create_model argument, value read as a Python literal (repeatable), "
        "e.g. img_size=28 patch_size=4 in_chans=1",
    )
    add(
        "--masks",
        metavar="PATH",
        help="DIMAP masks (from vitprune prune): pruned weights stay exactly zero through training",
    )
    g = parser.add_argument_group(
        "SaiT (reconstructed) dense/sparse training, with --method sait",
        "each step trains the dense pass and a sparse pass at a keep ratio drawn from --sait-keeps; "
        "with --distill soft --teacher T, both passes also distill T's logits (weight --sait-kd)",
    )
    g.add_argument(
        "--sait-keeps",
        type=values.listed(values.fraction_kept),
        default="0.5,0.6,0.7",
        help="keep ratios drawn for the sparse pass",
    )
    g.add_argument(
        "--sait-kd",
        type=values.non_negative,
        default=1.0,
        help="weight of logit distillation: dense→sparse, or teacher→both passes",
    )
    g.add_argument(
        "--sait-attn",
        type=values.non_negative,
        default=0.0,
        help="weight of deep→early attention distillation",
    )
    g.add_argument("--sait-alternate", action="store_true", help="alternate dense and sparse steps")


def parse_kwargs(pairs: list[str]) -> dict:
    """``["depth=12", "global_pool='avg'"]`` → ``{"depth": 12, "global_pool": "avg"}``.

    Values are read with ``ast.literal_eval``; one that is not a literal stays a string.
    """
    kwargs = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


def resumed_args(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` completed from the run ``--resume`` names (the options it recorded, where not given
    again; changes that would make it inexact refused); then ``--model`` and ``--out`` must be known."""
    if args.resume:
        args = recorded.resumed(args, recorded.given_options(args.verb_parser, args.argv[1:]))
    missing = [f"--{name}" for name in ("model", "out") if not getattr(args, name)]
    if missing:
        raise ValueError(
            f"{' and '.join(missing)} required (or --resume RUN, a run that recorded its options "
            "in train.json)"
        )
    return args


def run_train(args: argparse.Namespace) -> dict:
    """Build the model (and teacher), train it with :func:`vitprune.train.fit`, return a summary.

    The summary holds the final evaluation metrics, epochs, steps, wall time, world size
    and the output/checkpoint paths. Under torchrun every rank runs this; all return it.
    """
    device = distributed.setup()
    try:
        start = time.perf_counter()
        segment = args.task == "segment"
        if segment:
            _refuse_for_segmenter(args)
        model_kwargs = parse_kwargs(args.model_kwargs)
        if segment:
            model_kwargs = {**segmenter_kwargs(SEGMENT_CLASSES), **model_kwargs}
        model_name = args.model
        if args.backbone:  # the architecture alone: a zoo model's own weights would not fit a new head
            if args.checkpoint or args.pretrained:
                raise ValueError("--backbone gives the starting weights: drop --checkpoint/--pretrained")
            model_name, model_kwargs = zoo.architecture(model_name, model_kwargs)
        num_classes = model_kwargs.pop("num_classes", args.num_classes)
        if num_classes is None and _is_fashion_mnist(args.data):
            num_classes = FASHION_MNIST_CLASSES
        model = load_model(
            model_name,
            pretrained=args.pretrained,
            checkpoint=args.checkpoint,
            num_classes=num_classes,
            **model_kwargs,
        )
        if args.backbone:
            load_backbone(model, args.backbone)
        method_config = getattr(args, "method_config", None) or {}
        if args.method:
            apply(model, args.method, **zoo.resolve(method_config))
        shrunk = shrunk_directory(args.checkpoint) if args.checkpoint else None
        name, kwargs, structure = architecture(shrunk) if shrunk else (model_name, model_kwargs, None)
        spec = model_spec(
            name, {**kwargs, "num_classes": model.num_classes}, args.method, method_config, structure
        )
        config = TrainConfig(
            epochs=args.epochs,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_epochs=args.warmup_epochs,
            min_lr=args.min_lr,
            label_smoothing=args.label_smoothing,
            mixup=args.mixup,
            cutmix=args.cutmix,
            clip_grad=args.clip_grad,
            precision=args.precision,
            distill=args.distill,
            distill_weight=args.distill_weight,
            distill_tau=args.distill_tau,
            eval_every=args.eval_every,
            seed=args.seed,
        )
        teacher = _teacher(args, model.num_classes) if config.distill != "none" else None
        dataset = segmentation_dataset if segment else build_dataset
        train_set, test_set = dataset(args.data, "train", model), dataset(args.data, "test", model)
        rank, world = distributed.rank(), distributed.world_size()
        n_train, n_test = (min(args.limit or len(s), len(s)) for s in (train_set, test_set))
        train_loader = build_loader(
            train_set,
            args.batch_size,
            train_sampler(n_train, args.seed, rank, world),
            augment=isinstance(train_set, TensorImageDataset) and not segment,  # crops would move the maps
            drop_last=True,
            seed=args.seed,
            stream=rank,
            workers=args.workers,
        )
        eval_loader = build_loader(
            test_set, args.batch_size, ShardSampler(n_test, rank, world), workers=args.workers
        )
        if distributed.is_main():
            recorded.record(args, args.out)
        result = fit(
            model,
            train_loader,
            config,
            out_dir=args.out,
            eval_loader=eval_loader,
            teacher=teacher,
            resume=args.resume,
            model_spec=spec,
            device=device,
            progress=not getattr(args, "json", False),
            objective=_segment_objective(model, config) if segment else _sait_objective(args, model, config),
            after_step=_mask_keeper(args, model),
            log=_to_stderr,
            evaluator=_segment_scores if segment else None,
            score="miou" if segment else "top1",
        )
        return {
            "out": str(Path(args.out)),
            "checkpoint": result["checkpoint"],
            "best": result["best"],
            "metrics": result["metrics"],
            "epochs": result["epochs"],
            "global_step": result["global_step"],
            "train_loss": result["history"][-1]["train_loss"] if result["history"] else None,
            "world_size": world,
            "wall_s": time.perf_counter() - start,
        }
    finally:
        distributed.cleanup()


def _to_stderr(line: str) -> None:
    """Training's log lines go to stderr: stdout holds the summary (JSON with --json) only."""
    print(line, file=sys.stderr)


def _refuse_for_segmenter(args: argparse.Namespace) -> None:
    """Options a segmenter cannot train with: label mixing moves no label map, and neither
    distillation nor SaiT's dense/sparse objective scores pixels."""
    refused = [
        flag
        for flag, on in (
            ("--mixup", args.mixup > 0),
            ("--cutmix", args.cutmix > 0),
            (f"--distill {args.distill}", args.distill != "none"),
            ("--method sait", args.method == "sait"),
        )
        if on
    ]
    if refused:
        raise ValueError(f"--task segment trains without {', '.join(refused)}: drop them")


def _segment_objective(model: nn.Module, config: TrainConfig):
    """Pixel cross-entropy of the segmenter's upsampled patch logits."""
    return partial(pixel_loss, num_prefix=model.num_prefix_tokens, label_smoothing=config.label_smoothing)


def _segment_scores(model: nn.Module, loader, device, precision: str) -> dict:
    """A segmenter's mean IoU and pixel accuracy on this rank's share, summed over ranks."""
    return evaluate_segmentation(
        model, loader, device=device, precision=precision, progress=False, combine=True
    )


def _mask_keeper(args: argparse.Namespace, model: nn.Module):
    """With ``--masks``: keep the pruned weights at zero (gradient hooks, and a re-zero after each step)."""
    if not getattr(args, "masks", None):
        return None
    from vitprune.weights.io import load_masks
    from vitprune.weights.keeper import MaskKeeper

    return MaskKeeper(model, load_masks(args.masks)).restore


def _sait_objective(args: argparse.Namespace, model: nn.Module, config: TrainConfig):
    """SaiT's dense/sparse step when training a ``sait`` model, else the default objective."""
    if args.method != "sait":
        return None
    keeps = tuple(args.sait_keeps)
    return DenseSparseObjective(
        model,
        keeps,
        kd=args.sait_kd,
        attn=args.sait_attn,
        alternate=args.sait_alternate,
        label_smoothing=config.label_smoothing,
    )


def _is_fashion_mnist(data: str) -> bool:
    """Whether ``data`` names Fashion-MNIST (by name, or a directory holding its idx files)."""
    return data.lower() in FASHION_MNIST_NAMES or has_split(data, "train")


def _teacher(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """The distillation teacher: a ``vitprune train`` output directory, or a model name.

    A name is built with ``--teacher-kwargs`` and ``--teacher-checkpoint`` weights, or
    timm's pretrained weights when no checkpoint is given.
    """
    if args.teacher is None:
        raise ValueError(f"--distill {args.distill} needs --teacher NAME_OR_PATH")
    if Path(args.teacher).is_dir():
        return load_trained(args.teacher)
    return load_model(
        args.teacher,
        pretrained=args.teacher_checkpoint is None,
        checkpoint=args.teacher_checkpoint,
        num_classes=num_classes,
        **parse_kwargs(args.teacher_kwargs),
    )
