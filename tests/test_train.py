"""vitprune.train: exact resume, crash-safe checkpoints, losses, validation, data path and CLI."""

import argparse
import gzip
import json
import math
import struct

import pytest
import timm
import torch
import torch.nn.functional as F

import vitprune
from vitprune.data import model_transform
from vitprune.data.batched import BatchLoader, TensorImageDataset, build_loader, crop_flip
from vitprune.files.state_dict import CheckpointError
from vitprune.measure.evaluate import evaluate
from vitprune.train import (
    TrainConfig,
    distill_loss,
    find_checkpoint,
    fit,
    load_trained,
    model_spec,
    train_sampler,
)
from vitprune.train.cli import add_train_arguments, parse_kwargs, run_train
from vitprune.train.losses import combined_loss
from vitprune.train.schedule import lr_at
from vitprune.train.serialize import decode, encode

TINY = {"img_size": 28, "patch_size": 7, "depth": 2, "embed_dim": 32, "num_heads": 2, "in_chans": 1}


def tiny_vit(seed: int = 0, method: str | None = None, name: str = "vit_tiny_patch16_224", **overrides):
    """A two-block, 32-wide ViT on 1x28x28 inputs, optionally with a token method applied."""
    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=10, **{**TINY, **overrides})
    if method == "tome":
        vitprune.apply(model, "tome", r=2)
    return model


def synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 Fashion-MNIST-shaped images and labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, 10, (n,), generator=g)


def train_loader(model, n: int = 96, batch_size: int = 16, seed: int = 0) -> BatchLoader:
    dataset = TensorImageDataset(*synthetic(n), model)
    return build_loader(dataset, batch_size, train_sampler(n, seed), augment=True, drop_last=True, seed=seed)


def eval_loader(model, n: int = 40) -> BatchLoader:
    return build_loader(TensorImageDataset(*synthetic(n, seed=1), model), 16)


class InterruptAt:
    """A loader that raises KeyboardInterrupt (a simulated Ctrl-C) at one batch of one epoch."""

    def __init__(self, loader, epoch: int, batch: int):
        self.loader, self.stop, self.epoch = loader, (epoch, batch), 0

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if (self.epoch, i) == self.stop:
                raise KeyboardInterrupt
            yield batch


HYPER = {"epochs": 2, "lr": 2e-3, "warmup_epochs": 1, "progress": False, "log": lambda *_: None}


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


@pytest.mark.parametrize(
    ("method", "extra"),
    [(None, {}), ("tome", {"mixup": 0.4, "cutmix": 1.0, "clip_grad": 1.0})],
    ids=["plain", "tome-mixup"],
)
def test_resume_after_interrupt_equals_uninterrupted(tmp_path, method, extra):
    straight = tiny_vit(method=method, drop_path_rate=0.2)
    fit(
        straight,
        train_loader(straight),
        out_dir=tmp_path / "a",
        eval_loader=eval_loader(straight),
        **HYPER,
        **extra,
    )

    interrupted = tiny_vit(method=method, drop_path_rate=0.2)
    with pytest.raises(KeyboardInterrupt):
        fit(
            interrupted,
            InterruptAt(train_loader(interrupted), epoch=1, batch=3),
            out_dir=tmp_path / "b",
            eval_loader=eval_loader(interrupted),
            **HYPER,
            **extra,
        )
    assert find_checkpoint(tmp_path / "b").name == "epoch-0001"

    resumed = tiny_vit(seed=123, method=method, drop_path_rate=0.2)  # different init: all must come from disk
    result = fit(
        resumed,
        train_loader(resumed),
        out_dir=tmp_path / "b",
        resume=tmp_path / "b",
        eval_loader=eval_loader(resumed),
        **HYPER,
        **extra,
    )
    assert max_diff(straight, resumed) <= 1e-6
    assert result["epochs"] == 2 and result["global_step"] == 2 * 6
    history_a = json.loads((tmp_path / "a" / "last" / "state.json").read_text())["history"]
    assert [h["train_loss"] for h in result["history"]] == [h["train_loss"] for h in history_a]


def test_checkpoint_holds_no_pickles(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **{**HYPER, "epochs": 1})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".safetensors", ".json"}
    for path in files:
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{path} looks like a pickle / torch zip"
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())


def test_interrupted_save_leaves_last_complete_checkpoint(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **HYPER)
    # A kill while writing epoch 3: a half-written temp file, a truncated weights file, no marker.
    partial = tmp_path / "epoch-0003"
    partial.mkdir()
    (partial / ".model.safetensors.abc.tmp").write_bytes(b"\0" * 100)
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    assert find_checkpoint(tmp_path).name == "epoch-0002"
    (tmp_path / "last").unlink()  # even without the link, the newest *complete* epoch is found
    assert find_checkpoint(tmp_path).name == "epoch-0002"
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_checkpoint(partial)
    again = tiny_vit(seed=7)
    result = fit(again, train_loader(again), out_dir=tmp_path, resume=tmp_path, **{**HYPER, "epochs": 3})
    assert result["epochs"] == 3 and find_checkpoint(tmp_path).name == "epoch-0003"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003", "last"]


def test_resume_without_complete_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "epoch-0001").mkdir()
    (tmp_path / "epoch-0001" / "model.safetensors").write_bytes(b"partial")
    model = tiny_vit()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        fit(model, train_loader(model), out_dir=tmp_path, resume=tmp_path, **HYPER)
    with pytest.raises(CheckpointError, match="not found"):
        fit(model, train_loader(model), out_dir=tmp_path, resume=tmp_path / "nope", **HYPER)


def test_corrupt_checkpoint_is_detected(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **{**HYPER, "epochs": 1})
    weights = tmp_path / "last" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_trained(tmp_path)


def test_resume_into_other_architecture_names_keys(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **{**HYPER, "epochs": 1})
    other = tiny_vit(depth=3, embed_dim=48, num_heads=3)
    with pytest.raises(CheckpointError, match=r"blocks\.2\..*|shape mismatch: .*cls_token"):
        fit(other, train_loader(other), out_dir=tmp_path / "o", resume=tmp_path, **HYPER)


def test_load_trained_rebuilds_model_and_method(tmp_path):
    model = tiny_vit(method="tome")
    spec = model_spec("vit_tiny_patch16_224", {**TINY, "num_classes": 10}, "tome", {"r": 2})
    fit(model, train_loader(model), out_dir=tmp_path, model_spec=spec, **{**HYPER, "epochs": 1})
    rebuilt = load_trained(tmp_path / "last")
    assert rebuilt.vitprune.method.per_layer == [2, 2]
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), model.eval()(x), rtol=0, atol=0)


def test_load_trained_without_spec_is_a_clear_error(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **{**HYPER, "epochs": 1})
    with pytest.raises(CheckpointError, match="without a model spec"):
        load_trained(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("epochs", 0, "int > 0"),
        ("lr", -1e-3, "> 0"),
        ("weight_decay", -0.1, ">= 0"),
        ("precision", "fp16", "bf16"),
        ("distill", "medium", "soft"),
        ("distill_tau", 0.0, "> 0"),
    ],
)
def test_invalid_config_is_rejected(field, value, allowed):
    with pytest.raises(ValueError, match=rf"{field}={value!r}.*allowed: .*{allowed}"):
        TrainConfig(**{"epochs": 1, "lr": 1e-3, field: value})


def test_fit_rejects_bad_arguments(tmp_path):
    model = tiny_vit()
    with pytest.raises(ValueError, match="epochs=0"):
        fit(model, train_loader(model), out_dir=tmp_path, epochs=0, lr=1e-3)
    with pytest.raises(ValueError, match="needs a teacher"):
        fit(model, train_loader(model), out_dir=tmp_path, epochs=1, lr=1e-3, distill="soft")
    with pytest.raises(ValueError, match="no batches"):
        fit(model, train_loader(model, n=8), out_dir=tmp_path, epochs=1, lr=1e-3)


def test_distill_losses_by_hand():
    student = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    hard = (math.log(math.exp(2) + 2) + math.log(math.e + 2) - 0.0) / 2  # CE to classes 1 and 2
    assert distill_loss(student, teacher, "hard").item() == pytest.approx(hard, rel=1e-6)

    tau = 2.0

    def softmax(row):
        exps = [math.exp(v / tau) for v in row]
        return [e / sum(exps) for e in exps]

    kl = [
        sum(p * math.log(p / q) for p, q in zip(softmax(t), softmax(s), strict=True))
        for s, t in zip(student.tolist(), teacher.tolist(), strict=True)
    ]
    expected = sum(kl) / 2 * tau**2
    assert distill_loss(student, teacher, "soft", tau).item() == pytest.approx(expected, rel=1e-6)
    assert distill_loss(teacher, teacher, "soft", tau).item() == pytest.approx(0.0, abs=1e-7)


def test_combined_loss_routes_distillation_through_dist_head():
    cls_logits, dist_logits = torch.randn(4, 5), torch.randn(4, 5)
    labels, teacher = torch.tensor([0, 1, 2, 3]), torch.randn(4, 5)
    got = combined_loss(
        (cls_logits, dist_logits), labels, teacher, label_smoothing=0.1, distill="hard", weight=0.3, tau=1.0
    )
    expected = 0.7 * F.cross_entropy(cls_logits, labels, label_smoothing=0.1) + 0.3 * F.cross_entropy(
        dist_logits, teacher.argmax(-1)
    )
    torch.testing.assert_close(got, expected)
    plain = combined_loss(cls_logits, labels, None, label_smoothing=0.0, distill="none", weight=0.3, tau=1.0)
    torch.testing.assert_close(plain, F.cross_entropy(cls_logits, labels))


def test_distilled_deit_trains_with_teacher(tmp_path):
    student = tiny_vit(name="deit_tiny_distilled_patch16_224")
    teacher = tiny_vit(seed=3).eval()
    result = fit(
        student,
        train_loader(student),
        out_dir=tmp_path,
        teacher=teacher,
        distill="soft",
        distill_tau=2.0,
        **{**HYPER, "epochs": 1},
    )
    assert student.distilled_training and math.isfinite(result["history"][0]["train_loss"])


def test_bf16_training_runs(tmp_path):
    model = tiny_vit()
    result = fit(model, train_loader(model), out_dir=tmp_path, precision="bf16", **{**HYPER, "epochs": 1})
    assert math.isfinite(result["history"][0]["train_loss"])


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 10, 2, 1.0, 0.1) for s in range(10)]
    assert lrs[:3] == [0.5, 1.0, 1.0]
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_batched_preparation_matches_per_image_transform():
    images, labels = synthetic(5)
    for kwargs in ({}, {"img_size": 32, "patch_size": 8}, {"in_chans": 3}):
        model = tiny_vit(**kwargs)
        dataset = TensorImageDataset(images, labels, model)
        transform = model_transform(model)
        expected = torch.stack([transform(img) for img in images])
        torch.testing.assert_close(dataset.prepare(images), expected, rtol=1e-5, atol=1e-5)


def test_crop_flip_is_seeded_and_shifts():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    a = crop_flip(images, torch.Generator().manual_seed(0), padding=1)
    b = crop_flip(images, torch.Generator().manual_seed(0), padding=1)
    assert torch.equal(a, b) and a.shape == images.shape
    unchanged = crop_flip(images, torch.Generator().manual_seed(0), padding=0)
    for out, image in zip(unchanged, images, strict=True):
        assert torch.equal(out, image) or torch.equal(out, image.flip(-1))


def test_literal_encoding_keeps_tuples():
    value = {"r": (8, 0.5), "per_block": [1, 2], "name": "x", "none": None}
    assert decode(json.loads(json.dumps(encode(value)))) == value
    with pytest.raises(TypeError):
        encode({"bad": object()})
    assert parse_kwargs(["depth=2", "global_pool=avg", "img_size=(28, 28)"]) == {
        "depth": 2,
        "global_pool": "avg",
        "img_size": (28, 28),
    }


def write_idx(path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as a gzipped idx file, Fashion-MNIST's on-disk format."""
    header = struct.pack(">BBBB", 0, 0, 8, array.dim()) + struct.pack(f">{array.dim()}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.numpy().tobytes())


def test_cli_trains_and_rebuilds(tmp_path):
    data = tmp_path / "fmnist"
    data.mkdir()
    for split, n, seed in (("train", 64, 0), ("t10k", 24, 1)):
        images, labels = synthetic(n, seed)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images[:, 0])
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels.to(torch.uint8))
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--checkpoint", "--method", "--data"):
        parser.add_argument(flag)
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--json", action="store_true")
    add_train_arguments(parser)
    kwargs = [f"--model-kwargs={k}={v}" for k, v in TINY.items()]
    args = parser.parse_args(
        [
            "--model",
            "vit_tiny_patch16_224",
            "--method",
            "tome",
            "--data",
            str(data),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            str(tmp_path / "run"),
            "--json",
            *kwargs,
        ]
    )
    args.method_config = {"r": 1, "inflection": 0.0}
    summary = run_train(args)
    assert summary["epochs"] == 1 and summary["global_step"] == 4 and summary["metrics"]["n"] == 24
    model = load_trained(tmp_path / "run")
    assert model.vitprune.method.per_layer == [1, 1]
    test_set = TensorImageDataset(*synthetic(24, 1), model)
    assert evaluate(model, build_loader(test_set, 5), progress=False) == summary["metrics"]


def test_resume_with_changed_settings_says_so(tmp_path):
    model = tiny_vit()
    fit(model, train_loader(model), out_dir=tmp_path, **{**HYPER, "epochs": 1})
    lines = []
    fit(
        model,
        train_loader(model),
        out_dir=tmp_path,
        resume=tmp_path,
        **{**HYPER, "lr": 1e-3, "log": lines.append},
    )
    assert any("changed settings ['epochs', 'lr']" in line for line in lines)
