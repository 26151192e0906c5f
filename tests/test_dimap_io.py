"""Output of DIMAP pruning: files that load into stock timm, masks, errors leave nothing behind."""

import argparse
import json

import pytest
import timm
import torch
from test_dimap import SWIN, SWIN_KWARGS, tiny_images, tiny_swin

from vitprune.files.state_dict import CheckpointError, load_state_dict
from vitprune.weights import (
    apply_masks,
    build_report,
    dimap_masks,
    load_masks,
    load_pruned,
    load_shrunk,
    make_meta,
    nonzero_macs,
    save_pruned,
)
from vitprune.weights.cli import add_prune_arguments, run_prune
from vitprune.weights.scores import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _pruned(tmp_path):
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5)
    apply_masks(model, masks)
    out = save_pruned(model, masks, tmp_path / "out", build_report(model), make_meta(SWIN, SWIN_KWARGS))
    return model, masks, out


def test_pruned_state_dict_loads_into_stock_timm_strict(tmp_path):
    model, masks, out = _pruned(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.safetensors", "masks.safetensors", "report.json", "meta.json"]
    )
    stock = timm.create_model(SWIN, **SWIN_KWARGS).eval()
    stock.load_state_dict(load_state_dict(out / "model.safetensors"), strict=True)
    x = tiny_images()
    assert torch.equal(stock(x), model(x))
    assert torch.equal(load_pruned(out)(x), model(x))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"] == SWIN and "date" in meta
    report = json.loads((out / "report.json").read_text())
    assert report["prunable"]["sparsity"] == pytest.approx(0.5, abs=1e-5) and "theoretical" in report["label"]
    assert not list(tmp_path.glob(".*"))  # no temporary directory left


def test_masks_round_trip(tmp_path):
    _, masks, out = _pruned(tmp_path)
    loaded = load_masks(out / "masks.safetensors")
    assert loaded.keys() == masks.keys()
    assert all(loaded[k].dtype == torch.bool and torch.equal(loaded[k], masks[k]) for k in masks)
    assert load_masks(out).keys() == masks.keys()  # the directory works too


def test_corrupt_or_foreign_mask_files_raise_clear_errors(tmp_path):
    _, _, out = _pruned(tmp_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((out / "masks.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        load_masks(bad)
    with pytest.raises(CheckpointError, match="non-bool"):
        load_masks(out / "model.safetensors")
    pickled = tmp_path / "masks.pt"
    torch.save({"a": torch.ones(2, dtype=torch.bool)}, pickled)
    with pytest.raises(CheckpointError, match="never unpickled"):
        load_masks(pickled)


def test_existing_output_is_refused(tmp_path):
    _, masks, out = _pruned(tmp_path)
    with pytest.raises(ValueError, match="not empty"):
        save_pruned(tiny_swin(), masks, out, {}, make_meta(SWIN, SWIN_KWARGS))


def test_failure_while_writing_leaves_nothing(tmp_path):
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5)
    with pytest.raises(TypeError):  # report is not JSON-serialisable: fails after two files are written
        save_pruned(model, masks, tmp_path / "out", {"x": object()}, make_meta(SWIN, SWIN_KWARGS))
    assert list(tmp_path.iterdir()) == []


def _args(tmp_path, *argv):
    parser = argparse.ArgumentParser()
    add_prune_arguments(parser)
    args = parser.parse_args([*argv, "--out", str(tmp_path / "out")])
    kwargs = [f"{k}={v}" for k, v in SWIN_KWARGS.items() if k != "num_classes"]
    return argparse.Namespace(
        **vars(args), model=SWIN, pretrained=False, checkpoint=None, num_classes=10, model_kwargs=kwargs
    )


def test_cli_run_prune_writes_and_summarises(tmp_path):
    summary = run_prune(_args(tmp_path, "--params-removed", "0.3", "--modules", "qkv,mlp"))
    assert summary["out"] == str(tmp_path / "out")
    assert {row["module"] for row in summary["modules"]} == {"qkv", "mlp"}
    assert all(row["sparsity"] == pytest.approx(0.3, abs=1e-5) for row in summary["modules"])
    assert 0 < summary["params_removed_fraction"] < 0.3
    assert summary["theoretical_macs_removed_fraction"] > 0
    stock = timm.create_model(SWIN, **SWIN_KWARGS)
    stock.load_state_dict(load_state_dict(tmp_path / "out" / "model.safetensors"), strict=True)


@pytest.mark.parametrize(
    "argv, words",
    [
        ([], "exactly one target"),
        (["--params-removed", "0.5", "--modules", "qkv,attn"], "allowed: qkv, proj, mlp"),
        (["--pattern", "2:4", "--params-removed", "0.5"], "fixes the sparsity"),
        (["--structure", "neuron-head", "--macs", "0.5"], "takes --params-removed only .* not --macs 0.5"),
        (["--structure", "neuron-head", "--params-removed", "0.5", "--scope", "model"], "--scope model"),
    ],
)
def test_cli_bad_options_raise_and_write_nothing(tmp_path, argv, words):
    with pytest.raises(ValueError, match=words):
        run_prune(_args(tmp_path, *argv))
    assert not (tmp_path / "out").exists()


def test_cli_model_without_prunable_layers_writes_nothing(tmp_path):
    args = _args(tmp_path, "--params-removed", "0.5")
    args.model, args.model_kwargs, args.num_classes = "resnet10t", [], 10
    with pytest.raises(ValueError, match="no prunable layers"):
        run_prune(args)
    assert list(tmp_path.iterdir()) == []


def test_cli_structured_and_two_four_outputs_reload(tmp_path):
    x = tiny_images()
    summary = run_prune(_args(tmp_path, "--structure", "neuron-head", "--params-removed", "0.5"))
    assert summary["variant"] == "structure" and 0.3 < summary["params_removed_fraction"] < 0.6
    shrunk = load_shrunk(tmp_path / "out")
    assert shrunk(x).shape == (2, 10)
    args = _args(tmp_path, "--pattern", "2:4")
    args.out = str(tmp_path / "nm")
    run_prune(args)
    masks = load_masks(tmp_path / "nm")
    assert all(float(m.float().mean()) == 0.5 for m in masks.values())
    load_pruned(tmp_path / "nm")


@pytest.mark.parametrize("flag", ["0.8", "G"])
def test_cli_prune_macs_is_what_the_model_keeps(tmp_path, flag):
    """``--macs 0.8`` leaves 0.8x the dense MACs, as for token methods; ``--macs 0.05G`` is accepted."""
    dense = nonzero_macs(tiny_swin(), tiny_images(1))
    value = flag if flag != "G" else f"{0.8 * dense / 1e9:.6f}G"
    summary = run_prune(_args(tmp_path, "--macs", value))
    assert 1 - summary["theoretical_macs_removed_fraction"] == pytest.approx(0.8, abs=2e-3)
