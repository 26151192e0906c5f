"""Sweep: resuming an interrupted sweep gives the same JSON; reports and plots are written."""

import argparse
import copy
import json

import pytest
import torch
from conftest import fmnist_like

import vitprune
from vitprune.data import TensorImageDataset, build_loader
from vitprune.data.fashion_mnist import has_split, resolve_root
from vitprune.measure import macs
from vitprune.sweep import run as sweep_module
from vitprune.sweep.cli import add_sweep_arguments
from vitprune.sweep.files import markdown
from vitprune.sweep.measure import accuracy_and_macs
from vitprune.sweep.plots import label
from vitprune.sweep.run import SweepSettings, sweep, write_reports


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dense():
    return fmnist_like()


@pytest.fixture(scope="module")
def data(dense):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g)
    return TensorImageDataset(images, torch.randint(0, 10, (40,), generator=g), dense)


def settings(**changes) -> SweepSettings:
    base = dict(model="tiny", methods=["tome", "evit", "star", "ppt"], macs=[0.8, 0.6], limit=24)
    return SweepSettings(**{**base, "eval_batch": 8, "speed": False, **changes})


def saved(directory) -> dict:
    payload = json.loads((directory / "sweep.json").read_text())
    payload["machine"].pop("date")
    return payload


def test_interrupted_then_resumed_equals_uninterrupted(dense, data, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    whole = sweep(dense, data, settings(), "out", progress=False)
    assert [(r["method"], r["macs_target"]) for r in whole["rows"]] == [
        ("dense", 1.0),
        *[(m, t) for m in ("tome", "evit", "ppt") for t in (0.8, 0.6)],
    ]
    assert "star skipped" in whole["notes"]
    assert all(r["status"] == "ok" and r["n"] == 24 for r in whole["rows"])
    assert abs(whole["rows"][-1]["gmacs"] / whole["rows"][0]["gmacs"] - 0.6) < 0.05

    monkeypatch.chdir(tmp_path / "b")
    real_cell, calls = sweep_module.run_cell, []

    def killed_after_three(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[1:3])
        return real_cell(*args)

    monkeypatch.setattr(sweep_module, "run_cell", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        sweep(dense, data, settings(), "out", progress=False)
    assert len(json.loads((tmp_path / "b/out/sweep.json").read_text())["rows"]) == 3

    calls.clear()
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a: calls.append(a[1:3]) or real_cell(*a))
    sweep(dense, data, settings(), "out", resume=True, progress=False)
    assert calls == [(m, t) for m, t in ((r["method"], r["macs_target"]) for r in whole["rows"][3:])]
    assert saved(tmp_path / "b/out") == saved(tmp_path / "a/out")


def test_resume_refuses_other_settings(dense, data, tmp_path):
    sweep(dense, data, settings(methods=["tome"], macs=[0.8]), tmp_path, progress=False)
    with pytest.raises(ValueError, match="limit"):
        sweep(
            dense,
            data,
            settings(methods=["tome"], macs=[0.8], limit=12),
            tmp_path,
            resume=True,
            progress=False,
        )


def test_unreachable_target_is_recorded(dense, data, tmp_path):
    payload = sweep(dense, data, settings(methods=["ppt"], macs=[0.05]), tmp_path, progress=False)
    assert payload["rows"][1]["status"] == "unreachable"
    assert "out of reach" in payload["rows"][1]["error"]
    assert f"Unreachable targets: ppt at 0.05: {payload['rows'][1]['error']}." in markdown(payload)


def test_reports_and_plots(dense, data, tmp_path):
    payload = sweep(
        dense, data, settings(methods=["tome", "evit"], macs=[0.7], speed=True), tmp_path, progress=False
    )
    speed = payload["rows"][1]["speed"]
    assert speed["images_per_s"] > 0 and speed["latency_ms"] > 0 and speed["batch"] == 64
    assert payload["rows"][0]["speed"]["speedup"] == 1.0
    paths = write_reports(tmp_path, payload)
    assert len(paths["plots"]) == 2
    for path in [paths["csv"], paths["markdown"], *paths["plots"]]:
        assert (tmp_path / path).stat().st_size > 0
    csv_lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("method,macs_target,status,setting,top1") and len(csv_lines) == 4
    assert "| tome | 0.7 |" in (tmp_path / "sweep.md").read_text()
    assert [label(m) for m in ("tome", "sait")] == ["ToMe baseline", "SaiT (reconstructed)"]  # legend


def test_macs_are_those_of_the_evaluated_images(dense, data):
    model = vitprune.apply(copy.deepcopy(dense), "sait", mode="value", tau=1.0, layer=1)
    result = accuracy_and_macs(model, build_loader(data, 8, sampler=range(24)))
    per_image = macs(model, data.prepare(data.images[:24]))
    assert per_image.per_image.unique().numel() > 1  # adaptive: images differ
    assert result["gmacs"] == pytest.approx(per_image.mean / 1e9)
    assert result["macs_ratio"] == pytest.approx(per_image.ratio)


@pytest.mark.skipif(not has_split(resolve_root(), "test"), reason="Fashion-MNIST not installed")
def test_sweep_command(tmp_path):
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    kwargs = "img_size=28 patch_size=4 depth=2 embed_dim=48 num_heads=3 in_chans=1 num_classes=10".split()
    argv = ["--model", "vit_tiny_patch16_224", *[a for kw in kwargs for a in ("--model-kwargs", kw)]]
    argv += ["--methods", "tome,star", "--macs", "0.7", "--limit", "16", "--no-speed", "--out", str(tmp_path)]
    args = parser.parse_args([*argv, "--rounds", "2"])
    result = args.run(args)
    assert [r["method"] for r in result["rows"]] == ["dense", "tome"]
    assert result["plots"] == [str(tmp_path / "accuracy_vs_gmacs.png")]
    command = json.loads((tmp_path / "sweep.json").read_text())["command"]
    assert "--model-kwargs depth=2" in command and "--rounds 2" in command  # what reproduces it


def test_a_zoo_model_trained_with_a_method_is_not_labelled_dense(tmp_path):
    """fmnist-vit-sait loads with SaiT (keep 0.7) active: the dense row must be the model without it, and
    the SaiT cells keep the pruning point it was trained with."""
    from vitprune import zoo

    model = zoo.load("fmnist-vit-sait")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=g)
    data = TensorImageDataset(images, torch.randint(0, 10, (8,), generator=g), model)
    payload = sweep(
        model,
        data,
        settings(model="fmnist-vit-sait", methods=["sait"], macs=[0.8], limit=8),
        tmp_path,
        progress=False,
    )
    rows = {r["method"]: r for r in payload["rows"]}
    assert rows["dense"]["macs_ratio"] == 1.0 and rows["dense"]["executed_gmacs"] == rows["dense"]["gmacs"]
    assert rows["sait"]["macs_ratio"] == pytest.approx(0.8, abs=0.03)
    assert model.vitprune.method.name == "sait"  # the caller's model is left as it was
