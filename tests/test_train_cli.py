"""Issue 32: ``vitprune train`` on a subset (``--limit``), ``--resume RUN`` alone continuing from the
run's recorded options (changes that would make it inexact refused, by name), and Ctrl-C ending in
one line with exit status 1."""

from __future__ import annotations

import json

import pytest
from test_train import TINY, synthetic, write_idx

import vitprune.train.loop as loop
from vitprune.cli import main


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "fmnist"
    root.mkdir()
    for split, n, seed in (("train", 64, 0), ("t10k", 40, 1)):
        images, labels = synthetic(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images[:, 0])
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels.to("cpu").byte())
    return root


def _train(data, out, *extra) -> list[str]:
    kwargs = [f"--model-kwargs={k}={v}" for k, v in TINY.items()]
    model = ["--model", "vit_tiny_patch16_224", *kwargs]
    return ["train", *model, "--data", str(data), "--out", str(out), *extra]


def _interrupt_after_first_epoch(monkeypatch):
    save = loop._save

    def save_then_interrupt(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save", save_then_interrupt)


def test_limit_then_ctrl_c_then_resume_from_the_run_alone(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _interrupt_after_first_epoch(monkeypatch)
    argv = _train(data, run, "--epochs", "2", "--batch-size", "16", "--limit", "32", "--json")
    assert main(argv) == 1  # Ctrl-C after epoch 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err  # the epoch log and the line go to stderr
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and lines[0].startswith("interrupted; last complete checkpoint: ")
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--json"]) == 0  # nothing but the run
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and summary["global_step"] == 4  # 32 images, batches of 16, 2 epochs
    assert summary["metrics"]["n"] == 32 and summary["out"] == str(run)


def test_resume_refuses_changes_that_make_it_inexact_and_names_them(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train(data, run, "--epochs", "1", "--batch-size", "32", "--limit", "32", "--json")) == 0
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--epochs", "6", "--lr", "1e-3", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--epochs 6 (the run's: 1)" in err and "--lr 0.001 (the run's: 0.0005)" in err
    assert "--workers" not in err  # changes nothing the run computes


def test_train_without_model_or_resume_says_what_is_required(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert "--model required" in capsys.readouterr().err


def test_ctrl_c_in_any_verb_is_one_line_and_status_1(capsys, monkeypatch):
    import sys

    cli = sys.modules["vitprune.cli.main"]  # the package's ``main`` attribute is the function

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_macs", interrupted)
    assert main(["macs", "--model", "fmnist-vit"]) == 1
    assert capsys.readouterr().err == "vitprune macs: interrupted\n"
