"""Issue 32: a structured prune output is named for what it is wherever a model name is reported, its
report's dense columns hold the original model's counts, and ``bench`` times it against the model it
was pruned from, in the same run."""

import json

import pytest
import torch
from PIL import Image

from vitprune.cli import main

ARCH = ["--model", "vit_tiny_patch16_224"] + [
    arg
    for kv in ("img_size=28", "patch_size=4", "in_chans=1", "depth=2", "embed_dim=48", "num_heads=3")
    for arg in ("--model-kwargs", kv)
]
BENCH = ["--batch-sizes", "1", "--precisions", "fp32", "--rounds", "1", "--runs", "1", "--json"]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    root = tmp_path_factory.mktemp("pruned")
    out = root / "small"
    argv = ["prune", *ARCH, "--num-classes", "10", "--params-removed", "0.5", "--structure", "neuron-head"]
    assert main([*argv, "--scope", "layer", "--out", str(out), "--json"]) == 0
    for cls in ("a", "b"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (28, 28), color=60 * i).save(root / "data" / cls / f"{i}.png")
    return out, root / "data"


def _json(capsys, *argv) -> tuple[dict, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_structured_report_compares_with_the_original_model(pruned):
    out, _ = pruned
    report = json.loads((out / "report.json").read_text())
    for row in report["modules"].values():
        assert row["nonzero_params"] < 0.7 * row["dense_params"] and 0.3 < row["sparsity"] < 0.7
    assert 0.3 < report["prunable"]["sparsity"] < 0.7
    assert report["prunable"]["dense_params"] == sum(r["dense_params"] for r in report["layers"])


@pytest.mark.parametrize("verb", ["eval", "macs", "visualize"])
def test_the_pruned_model_is_named_not_the_model_default(capsys, pruned, verb, tmp_path):
    out, data = pruned
    extra = {
        "eval": ["--data", data],
        "macs": [],
        "visualize": ["--data", data, "--method", "tome", "--images", "2", "--out", tmp_path / "maps.png"],
    }[verb]
    result, _ = _json(capsys, verb, "--checkpoint", out, *extra, "--json")  # no --model: its default
    assert result["model"] == f"{out} (pruned from vit_tiny_patch16_224)"


def test_bench_times_the_pruned_model_against_the_model_it_came_from(capsys, pruned):
    out, _ = pruned
    result, _ = _json(capsys, "bench", "--checkpoint", out, *BENCH)
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"dense", "pruned"} and rows["dense"]["speedup"] == 1.0
    assert rows["pruned"]["gmacs"] < 0.8 * rows["dense"]["gmacs"]  # the original's MACs, not the pruned's
    assert result["model"].endswith("(pruned from vit_tiny_patch16_224)")
    assert result["verdict"]["fp32"].startswith("pruned is")


def test_bench_compile_says_what_it_compiles_on_stderr_and_keeps_stdout_json(capsys, pruned, monkeypatch):
    out, _ = pruned
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)  # the words, not the minutes
    result, err = _json(capsys, "bench", "--checkpoint", out, "--compile", *BENCH)
    assert "compiling dense, pruned with torch.compile" in err and "2 compilations" in err
    assert {r["model"] for r in result["rows"]} == {"dense", "pruned"}


def test_prune_refuses_the_ambiguous_params_and_names_params_removed(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["prune", *ARCH, "--params", "0.5", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--params is ambiguous" in err and "--params-removed 0.5" in err
