"""Fashion-MNIST reader, model transform and dataset/loader builders."""

from pathlib import Path

import pytest
import timm
import torch

from vitprune.data import TensorImageDataset, build_dataset, build_loader, data_config, model_transform
from vitprune.data.fashion_mnist import DEFAULT_ROOT, FashionMNIST, has_split, resolve_root

FMNIST_ROOT = resolve_root()
needs_fmnist = pytest.mark.skipif(
    not (has_split(FMNIST_ROOT, "test") and has_split(FMNIST_ROOT, "train")),
    reason=f"Fashion-MNIST not found in {FMNIST_ROOT} (apt-get install dataset-fashion-mnist)",
)


def tiny_vit(**kwargs):
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10, **kwargs
    )


@pytest.fixture(scope="module")
def test_split():
    return FashionMNIST(FMNIST_ROOT, split="test")


@needs_fmnist
def test_test_split_size_and_labels(test_split):
    assert len(test_split) == 10_000
    assert test_split.images.shape == (10_000, 1, 28, 28)
    assert test_split.images.dtype == torch.uint8
    assert sorted(test_split.labels.unique().tolist()) == list(range(10))
    # The test split is balanced: 1000 images per class.
    assert torch.bincount(test_split.labels).tolist() == [1000] * 10
    image, label = test_split[0]
    assert image.shape == (1, 28, 28) and isinstance(label, int)
    assert image.max() > 0


@needs_fmnist
def test_train_split_size():
    assert len(FashionMNIST(split="train")) == 60_000


def test_env_var_root_used_and_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPRUNE_FMNIST", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(split="test")
    message = str(err.value)
    assert "dataset-fashion-mnist" in message
    assert str(tmp_path / "nowhere") in message
    assert "VITPRUNE_FMNIST" in message


def test_explicit_root_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPRUNE_FMNIST", str(DEFAULT_ROOT))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        FashionMNIST(tmp_path, split="test")


def test_bad_split_names_value_and_choices():
    with pytest.raises(ValueError, match=r"'valid'.*test.*train"):
        FashionMNIST(split="valid")


def test_data_config_reflects_built_model_not_pretrained_cfg():
    assert data_config(tiny_vit())["input_size"] == (3, 32, 32)
    assert data_config(tiny_vit(in_chans=1))["input_size"] == (1, 32, 32)


def test_transform_rgb_model_shape_dtype_and_normalisation():
    transform = model_transform(tiny_vit())
    white = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    black = torch.zeros((1, 28, 28), dtype=torch.uint8)
    out = transform(white)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    # vit_tiny uses mean = std = 0.5, so white maps to +1 and black to -1.
    torch.testing.assert_close(out, torch.ones(3, 32, 32))
    torch.testing.assert_close(transform(black), -torch.ones(3, 32, 32))


def test_transform_keeps_one_channel_for_grey_model():
    transform = model_transform(tiny_vit(in_chans=1))
    out = transform(torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8))
    assert out.shape == (1, 32, 32)
    assert -1.0 - 1e-6 <= out.min() and out.max() <= 1.0 + 1e-6


@needs_fmnist
def test_build_dataset_fmnist_alias_feeds_model():
    model = tiny_vit().eval()
    dataset = build_dataset("fmnist", "test", model)
    images, labels = next(iter(build_loader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)
    with torch.inference_mode():
        assert model(images).shape == (4, 10)


@needs_fmnist
def test_build_dataset_directory_of_idx_files_is_fashion_mnist():
    dataset = build_dataset(str(FMNIST_ROOT), "test", tiny_vit())
    assert isinstance(dataset, TensorImageDataset) and len(dataset) == 10_000


def test_build_dataset_missing_path_named(tmp_path):
    missing = tmp_path / "imagenet"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_dataset(str(missing), "val", tiny_vit())


def _write_image_folder(root: Path) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (40, 50), color=(200, 10, 10)).save(root / cls / "a.png")


def test_build_dataset_image_folder_uses_split_subdir(tmp_path):
    _write_image_folder(tmp_path / "val")
    dataset = build_dataset(str(tmp_path), "val", tiny_vit())
    assert dataset.classes == ["cat", "dog"] and len(dataset) == 2
    image, label = dataset[1]
    assert image.shape == (3, 32, 32) and label == 1


def test_build_dataset_image_folder_without_split_subdir(tmp_path):
    _write_image_folder(tmp_path)
    assert len(build_dataset(str(tmp_path), "val", tiny_vit())) == 2


@needs_fmnist
def test_batched_path_equals_per_image_transform():
    model = tiny_vit()
    fast = build_dataset("fmnist", "test", model)
    transform = model_transform(model)
    raw = FashionMNIST(split="test")
    for i in (0, 17, 9999):
        torch.testing.assert_close(fast[i][0], transform(raw.images[i]))
        assert fast[i][1] == int(raw.labels[i])


def test_rgb_image_folder_feeds_a_one_channel_model(tmp_path):
    """RGB files for a greyscale model are converted to its channels (was: a conv traceback)."""
    from conftest import fmnist_like

    _write_image_folder(tmp_path)
    model = fmnist_like()
    image, _ = build_dataset(str(tmp_path), "val", model)[0]
    assert image.shape == (1, 28, 28) and model(image[None]).shape == (1, 10)
