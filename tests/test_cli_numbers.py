"""What ``eval``, ``macs`` and ``bench`` print is what ran: the MACs of the images evaluated (useful and
executed, padding included), the method the model really runs, once under torchrun."""

import json

import pytest
import torch

import vitprune
from vitprune import zoo
from vitprune.cli import main
from vitprune.data import build_dataset
from vitprune.data.fashion_mnist import has_split, resolve_root
from vitprune.measure import macs

needs_fmnist = pytest.mark.skipif(not has_split(resolve_root(), "test"), reason="Fashion-MNIST not installed")
MASS = ["--model", "fmnist-vit-sait", "--method", "sait", "-p", "mode=mass", "-p", "mass=0.9"]
N = 48


def run_json(capsys, *argv) -> dict:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def first_images():
    model = zoo.load("fmnist-vit-sait")
    data = build_dataset("fashion-mnist", "test", model)
    return torch.stack([data[i][0] for i in range(N)])


def _useful_mean(images) -> float:
    """Each image alone (batch 1, so no padding): its own MACs, averaged."""
    model = zoo.load("fmnist-vit-sait")
    model.sait.set(mode="mass", mass=0.9)
    return sum(macs(model, image[None]).mean for image in images) / len(images) / 1e9


@needs_fmnist
def test_eval_gmacs_are_the_mean_over_the_evaluated_images(capsys, first_images):
    argv = ["eval", *MASS, "--limit", str(N), "--batch-size", "16", "--json"]
    first, second = run_json(capsys, *argv), run_json(capsys, *argv)
    assert first["gmacs"] == second["gmacs"] == pytest.approx(_useful_mean(first_images), rel=1e-9)
    assert first["executed_gmacs"] > first["gmacs"]  # padding to the longest image of each batch
    alone = run_json(capsys, "eval", *MASS, "--limit", str(N), "--batch-size", "1", "--json")
    assert alone["executed_gmacs"] == pytest.approx(alone["gmacs"]) == pytest.approx(first["gmacs"])


@needs_fmnist
def test_macs_counts_the_data_images_and_refuses_a_random_one(capsys, first_images):
    argv = ["macs", *MASS, "--data", "fashion-mnist", "--limit", str(N), "--batch", "16", "--json"]
    result = run_json(capsys, *argv)
    assert result["gmacs"] == pytest.approx(_useful_mean(first_images), rel=1e-9)
    assert result["executed_gmacs"] > result["gmacs"] and result["images"] == N
    assert main(["macs", *MASS]) == 2
    assert "give --data" in capsys.readouterr().err


@needs_fmnist
def test_bench_prints_useful_and_executed_macs_of_real_images(capsys):
    argv = ["bench", *MASS, "--data", "fashion-mnist", "--limit", "32", "--batch-sizes", "1,16"]
    rows = run_json(capsys, *argv, "--precisions", "fp32", "--rounds", "1", "--runs", "1", "--json")["rows"]
    sait = {r["batch_size"]: r for r in rows if r["model"] == "sait"}
    assert sait[1]["executed_gmacs"] == pytest.approx(sait[1]["gmacs"])
    assert sait[16]["executed_gmacs"] > sait[16]["gmacs"] == pytest.approx(sait[1]["gmacs"])


@needs_fmnist
def test_eval_names_the_method_a_zoo_model_loads_with(capsys):
    result = run_json(capsys, "eval", "--model", "fmnist-vit-sait", "--limit", "8", "--json")
    assert result["method"] == "sait" and result["macs_ratio"] < 0.9
    assert run_json(capsys, "eval", "--model", "fmnist-vit", "--limit", "8", "--json")["method"] is None


def test_json_prints_once_under_torchrun(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert main(["methods", "--json"]) == 0 and capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert main(["methods", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["methods"] == vitprune.methods()
