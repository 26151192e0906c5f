"""Safe checkpoint reading/writing and strict loading into models."""

import argparse
import pickle

import pytest
import timm
import torch
from safetensors import safe_open

from vitprune.files.atomic import USUAL_MODE
from vitprune.files.state_dict import CheckpointError, load_state_dict, save_state_dict
from vitprune.models.load import load_model


def tiny_vit(**kwargs):
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10, **kwargs
    )


TINY = {"img_size": 32, "patch_size": 8, "depth": 2}


EXECUTED = []


def _side_effect():
    EXECUTED.append(True)
    return "pwned"


class Payload:
    """An arbitrary object whose unpickling would call ``_side_effect``."""

    def __reduce__(self):
        return (_side_effect, ())


class Plain:
    """An ordinary custom class instance: not a tensor, so not allowed in a checkpoint."""


def test_safetensors_round_trip_is_exact_and_atomic(tmp_path):
    state = tiny_vit().state_dict()
    path = save_state_dict(state, tmp_path / "w.safetensors", metadata={"epoch": 3})
    loaded = load_state_dict(path)
    assert loaded.keys() == state.keys()
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"epoch": "3"}
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left behind


def test_save_handles_views_and_tied_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    path = save_state_dict({"t": base.t(), "a": base, "b": base}, tmp_path / "x.safetensors")
    loaded = load_state_dict(path)
    assert torch.equal(loaded["t"], base.t()) and torch.equal(loaded["b"], base)


@pytest.mark.parametrize("wrapper", ["model", "state_dict", "model_ema"])
def test_pth_training_checkpoint_unwrapped(tmp_path, wrapper):
    state = {"w": torch.randn(2, 3)}
    torch.save({wrapper: state, "epoch": 7}, tmp_path / "c.pth")
    assert torch.equal(load_state_dict(tmp_path / "c.pth")["w"], state["w"])


def test_timm_train_checkpoint_with_args_namespace(tmp_path):
    state = {"w": torch.randn(2)}
    path = tmp_path / "model_best.pth.tar"
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1), "epoch": 1}, path)
    assert torch.equal(load_state_dict(path)["w"], state["w"])


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_state_dict(tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file_raises_checkpoint_error(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    state = {"w": torch.randn(64, 64)}
    if suffix == ".safetensors":
        save_state_dict(state, good)
    else:
        torch.save(state, good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="bad"):
        load_state_dict(bad)


def test_pickled_code_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="_side_effect"):
        load_state_dict(path)
    assert EXECUTED == []


def test_custom_class_instance_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "args": Plain()}, path)
    with pytest.raises(CheckpointError, match="Plain"):
        load_state_dict(path)


def test_legacy_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "legacy.bin"
    path.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(CheckpointError):
        load_state_dict(path)
    assert EXECUTED == []


def test_non_tensor_entries_rejected(tmp_path):
    torch.save({"w": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="note"):
        load_state_dict(tmp_path / "mixed.pt")


def test_load_model_with_checkpoint_matches_source(tmp_path):
    source = tiny_vit()
    path = save_state_dict(source.state_dict(), tmp_path / "w.safetensors")
    model = load_model("vit_tiny_patch16_224", checkpoint=path, num_classes=10, **TINY)
    assert not model.training
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), source.eval()(x))


def test_mismatched_checkpoint_names_keys(tmp_path):
    state = tiny_vit().state_dict()
    state.pop("cls_token")
    state["extra.weight"] = torch.zeros(1)
    path = save_state_dict(state, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model("vit_tiny_patch16_224", checkpoint=path, num_classes=5, **TINY)
    message = str(err.value)
    assert "1 missing: cls_token" in message
    assert "1 unexpected: extra.weight" in message
    assert "2 shape mismatch" in message and "head.weight (10, 192) vs model (5, 192)" in message


def test_unknown_model_suggests_list_models():
    with pytest.raises(ValueError, match=r"vit_nonexistent_xyz.*timm\.list_models\('\*vit\*'\)"):
        load_model("vit_nonexistent_xyz")


def test_saved_weights_get_the_usual_file_mode(tmp_path):
    path = save_state_dict({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    assert path.stat().st_mode & 0o777 == USUAL_MODE  # safetensors alone writes 0600


def test_refused_pickle_never_suggests_unpickling(tmp_path):
    """torch's own advice is to retry with weights_only=False: never repeat it; say why and how to convert."""
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"w": Plain()}, protocol=4))
    with pytest.raises(CheckpointError) as err:
        load_state_dict(path)
    message = str(err.value)
    assert "weights_only" not in message and "could run code" in message and "safetensors" in message
    assert len(message.splitlines()) == 1
