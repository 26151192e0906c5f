"""A ViT checkpoint made at another patch grid starts a model at this one (timm's resampling)."""

import pytest
import timm
import torch

from vitprune.files.state_dict import CheckpointError, save_state_dict
from vitprune.models.load import load_model

ARCH = {"patch_size": 4, "depth": 2, "embed_dim": 48, "num_heads": 3, "num_classes": 10}


def saved(tmp_path, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", **{**ARCH, **kwargs})
    path = tmp_path / "w.safetensors"
    save_state_dict(model.state_dict(), path)
    return model, path


def test_a_larger_image_keeps_every_weight_but_the_position_embedding(tmp_path, capsys):
    small, path = saved(tmp_path, img_size=16)
    big = load_model("vit_tiny_patch16_224", checkpoint=path, img_size=32, **ARCH)
    assert big.pos_embed.shape == (1, 1 + 8 * 8, 48)
    assert torch.equal(big.pos_embed[:, 0], small.pos_embed[:, 0])  # the class token's row is kept
    for name, value in small.state_dict().items():
        if name != "pos_embed":
            assert torch.equal(big.state_dict()[name], value), name
    assert "pos_embed (1, 17, 48) -> (1, 65, 48)" in capsys.readouterr().err


def test_a_smaller_patch_resamples_the_kernel(tmp_path):
    _, path = saved(tmp_path, img_size=16)
    model = load_model("vit_tiny_patch16_224", checkpoint=path, img_size=16, **{**ARCH, "patch_size": 2})
    assert model.patch_embed.proj.weight.shape == (48, 3, 2, 2)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_any_other_mismatch_is_still_refused(tmp_path):
    _, path = saved(tmp_path, img_size=16)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model("vit_tiny_patch16_224", checkpoint=path, img_size=32, **{**ARCH, "embed_dim": 96})
