"""The baselines in every report (issue 29): the sweep's rows, tables and plots, and each method's
speed as a fraction of ``resize``'s at its MACs in the sweep and in ``benchmarks/deploy.py``."""

import copy
import sys
from pathlib import Path

import pytest
import torch
from conftest import fmnist_like
from families import build

import vitprune
import vitprune.sweep.measure as sweep_measure
from vitprune.data import TensorImageDataset
from vitprune.sweep.files import markdown
from vitprune.sweep.plots import style
from vitprune.sweep.run import SweepSettings, sweep, write_reports
from vitprune.sweep.yardstick import VERSUS, points_vs_resize, resize_twin, speed_vs_resize

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def dense():
    return fmnist_like(depth=4)


def test_points_vs_resize_says_how_far_each_method_is_from_a_smaller_input():
    rows = [
        {"method": "dense", "macs_target": 1.0, "status": "ok", "top1": 92.0, "macs_ratio": 1.0},
        {"method": "tome", "macs_target": 0.5, "status": "ok", "top1": 91.5, "macs_ratio": 0.5},
        {"method": "evit", "macs_target": 0.5, "status": "ok", "top1": 56.75, "macs_ratio": 0.5},
        {"method": "evit", "macs_target": 0.8, "status": "unreachable", "error": "out of reach"},
        {"method": "resize", "macs_target": 0.5, "status": "ok", "top1": 89.0, "macs_ratio": 0.5008},
        {"method": "resize", "macs_target": 0.8, "status": "ok", "top1": 91.0, "macs_ratio": 0.8328},
    ]
    assert points_vs_resize(rows) == [
        {"method": "resize (MACs reached)", "0.5": "0.501x", "0.8": "0.833x"},
        {"method": "tome vs resize", "0.5": "+2.50"},
        {"method": "evit vs resize", "0.5": "-32.25"},
    ]
    assert points_vs_resize(rows[:4]) == []  # no resize rows: no comparison


def test_speed_vs_resize_divides_within_one_step_of_one_run():
    rows = [
        {"model": m, "precision": "fp32", "batch_size": b, "images_per_s": v}
        for m, b, v in [("dense", 1, 10.0), ("tome", 1, 12.0), ("resize", 1, 16.0), ("tome", 64, 30.0)]
    ]
    out = {(r["model"], r["batch_size"]): r.get("vs_resize") for r in speed_vs_resize(rows)}
    assert out == {("dense", 1): 0.625, ("tome", 1): 0.75, ("resize", 1): 1.0, ("tome", 64): None}


def test_resize_twin_sits_at_the_methods_macs(dense):
    evit = vitprune.apply(copy.deepcopy(dense), "evit", macs=0.6)
    twin = resize_twin(dense, evit)
    assert twin.vitprune.method.name == "resize" and twin.vitprune.method.size == (5, 6)
    assert resize_twin(dense, twin) is None and resize_twin(dense, dense) is None
    assert not hasattr(dense, "vitprune")  # the dense model is copied, not patched


def test_plots_draw_baselines_grey_and_dashed():
    assert (
        style("resize", 5)["linestyle"] == "--" and style("random", 6)["color"] != style("topk", 7)["color"]
    )
    assert style("tome", 0)["linestyle"] == "-" and style("tome", 0)["color"] == "C0"


def test_sweep_rows_tables_and_speed_against_resize(dense, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_measure, "SPEED_ROUNDS", 1)  # the plumbing, not the figures
    monkeypatch.setattr(sweep_measure, "LATENCY_RUNS", 1)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=g)
    data = TensorImageDataset(images, torch.randint(0, 10, (16,), generator=g), dense)
    settings = SweepSettings(
        model="tiny",
        methods=["evit", "resize", "random", "topk"],
        macs=[0.6],
        limit=16,
        eval_batch=8,
        batch=4,
    )
    payload = sweep(dense, data, settings, tmp_path, progress=False)
    rows = {r["method"]: r for r in payload["rows"]}
    assert set(rows) == {"dense", "evit", "resize", "random", "topk"}
    assert rows["resize"]["setting"] == "size=(5, 6)" and rows["resize"]["macs_ratio"] == pytest.approx(
        0.6, abs=0.05
    )
    for method in ("evit", "random", "topk"):
        speed = rows[method]["speed"]
        assert speed["vs_resize"] > 0 and speed["latency_vs_resize"] > 0
    assert "vs_resize" not in rows["resize"]["speed"] and "vs_resize" not in rows["dense"]["speed"]
    text = markdown(payload)
    diff = rows["topk"]["top1"] - rows["resize"]["top1"]
    assert VERSUS.format(score="Top-1") in text and f"| topk vs resize | {diff:+.2f} |" in text
    assert len(write_reports(tmp_path, payload)["plots"]) == 2


def test_a_sweep_records_a_refused_baseline_and_goes_on(tmp_path):
    beit = build("timm-beit")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = TensorImageDataset(images, torch.randint(0, 10, (4,), generator=g), beit)
    settings = SweepSettings(model="beit", methods=["resize", "tome"], macs=[0.8], limit=4, speed=False)
    payload = sweep(beit, data, settings, tmp_path, progress=False)
    assert [r["status"] for r in payload["rows"]] == ["ok", "refused", "ok"]
    assert "Refused for this model: resize: timm Beit cannot take a resized input" in markdown(payload)


def test_deploy_benchmark_times_each_method_against_resize_at_its_macs(dense):
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import deploy

    nets = {"dense": dense, "r0": vitprune.apply(copy.deepcopy(dense), "tome", r=0)}
    for method, target in (("evit", 0.6), ("resize", 0.6), ("tome", 0.8)):
        nets[method] = vitprune.apply(copy.deepcopy(dense), method, macs=target)
    twins = deploy.add_resize_twins(nets)
    assert twins["evit"] == "resize" and twins["tome"].startswith("resize-") and "r0" not in twins
    gmacs = dict.fromkeys(nets, 1.0)
    rows = deploy.step_rows(nets, twins, gmacs, batch=2, mode="eager", rounds=1, sample_s=0.001)
    ips = {r["model"]: r["images_per_s"] for r in rows}
    by_model = {r["model"]: r for r in rows}
    assert by_model["evit"]["vs_resize"] == pytest.approx(ips["evit"] / ips["resize"])
    assert by_model["tome"]["vs_resize"] == pytest.approx(ips["tome"] / ips[twins["tome"]])
    assert "vs_resize" not in by_model["dense"] and "vs_resize" not in by_model["r0"]
