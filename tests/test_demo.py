"""The demo's DIMAP section: run on the shipped fmnist-swin when the zoo has it, a one-line note
otherwise; the SaiT section on the shipped SaiT checkpoint; the STAR prior shipped beside a zoo
model is used by name (a portable command); the main table's model has DeiT's token count."""

import json

import pytest
import timm
import torch
from test_dimap import tiny_swin
from test_train import tiny_vit

import vitprune
from vitprune import demo, zoo
from vitprune.data.fashion_mnist import has_split, resolve_root
from vitprune.vit import describe
from vitprune.weights.scores import one_thread

needs_fmnist = pytest.mark.skipif(not has_split(resolve_root(), "test"), reason="Fashion-MNIST not installed")


def timm_deit():
    return timm.create_model("deit_small_patch16_224", depth=1)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_dimap_skipped_with_a_note_without_fmnist_swin(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo, "names", lambda: ["fmnist-vit"])
    demo.run_dimap(tmp_path, 100)
    out = capsys.readouterr().out.strip()
    assert out == "DIMAP: skipped, the zoo has no 'fmnist-swin' yet (shipped: fmnist-vit)."
    assert not (tmp_path / "dimap.json").exists()


@needs_fmnist
def test_dimap_section_on_the_zoo_swin(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo, "names", lambda: ["fmnist-swin", "fmnist-vit"])
    monkeypatch.setattr(zoo, "load", lambda name: tiny_swin() if name == "fmnist-swin" else None)
    demo.run_dimap(tmp_path, 40)
    out = capsys.readouterr().out
    assert "first 40 of 10000 test images (a subset" in out and "theoretical" in out

    payload = json.loads((tmp_path / "dimap.json").read_text())
    rows = {row["model"]: row for row in payload["rows"]}
    assert list(rows) == ["dense", "DIMAP 30%", "DIMAP 50%", "uniform magnitude 50%"]
    assert [rows[m]["scope"] for m in rows] == ["", "module", "module", "layer"]
    dense, half = rows["dense"], rows["DIMAP 50%"]
    assert dense["params_ratio"] == 1.0 and dense["macs_ratio"] == 1.0
    assert rows["DIMAP 30%"]["nonzero_params"] > half["nonzero_params"]
    assert half["nonzero_params"] == rows["uniform magnitude 50%"]["nonzero_params"]  # same budget
    assert 0.4 < half["params_ratio"] < 0.6  # prunable weights are most of the model
    assert half["macs_ratio"] < 1.0 and half["gmacs_theoretical"] < dense["gmacs_theoretical"]
    assert all(0 <= row["top1"] <= 100 for row in rows.values())


@pytest.mark.parametrize("name", [demo.MODEL, demo.SECOND])
def test_star_prior_shipped_with_the_model_is_named(name, tmp_path):
    assert (zoo.ZOO_DIR / "calibration" / f"{name}-star.safetensors").exists()
    assert demo.star_prior(torch.nn.Identity(), name, tmp_path) == name


def test_main_table_is_at_deits_token_count():
    """The demo's two models have DeiT-S's 196 patches; the main one reads the cluttered canvases."""
    for name in (demo.MODEL, demo.SECOND):
        assert describe(zoo.load(name)).num_patches == 196 == describe(timm_deit()).num_patches
    assert zoo.card(demo.MODEL)["data"] == demo.DATA[demo.MODEL] == "fashion-mnist-clutter"


@needs_fmnist
def test_sait_section_shows_one_checkpoint_at_each_target(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo, "names", lambda: ["fmnist-vit", demo.SAIT])
    model = vitprune.apply(tiny_vit(depth=4, img_size=56, patch_size=8), "sait", layer=1)
    monkeypatch.setattr(zoo, "load", lambda name: model)
    demo.run_sait(tmp_path, 40, targets=(0.8, 0.5))
    assert "first 40 test canvases" in capsys.readouterr().out
    rows = json.loads((tmp_path / "sait.json").read_text())["rows"]
    assert [row["macs_target"] for row in rows] == [1.0, 0.8, 0.5]
    assert rows[0]["mode"] == "dense" and all(row["mode"].startswith("ratio keep=") for row in rows[1:])


def test_sait_section_silent_without_the_checkpoint(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo, "names", lambda: ["fmnist-vit"])
    demo.run_sait(tmp_path, 40)
    assert capsys.readouterr().out == "" and not (tmp_path / "sait.json").exists()


def test_segmentation_skipped_with_a_note_without_the_segmenter(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo, "names", lambda: ["fmnist-vit"])
    demo.run_segmentation(tmp_path, 100)
    assert capsys.readouterr().out.strip() == (
        "Segmentation: skipped, the zoo has no 'clutter-seg-196' yet (shipped: fmnist-vit)."
    )


@needs_fmnist
def test_segmentation_section_scores_every_method_and_draws_its_maps(monkeypatch, tmp_path, capsys):
    from test_segment import _segmenter

    monkeypatch.setattr(zoo, "names", lambda: [demo.SEGMENTER, "fmnist-vit"])
    monkeypatch.setattr(zoo, "load", lambda name: _segmenter())
    demo.run_segmentation(tmp_path, 24, targets=(0.65,))
    out = capsys.readouterr().out
    assert "mean IoU over 11 classes" in out and "first 24 of 10000 test canvases" in out
    assert "Mean-IoU points each method beats (+) or loses (-) to `resize`" in out
    rows = {r["method"]: r for r in json.loads((tmp_path / "sweep" / "sweep.json").read_text())["rows"]}
    assert {"dense", "tome", "evit", "ppt", "sait", "resize", "random", "topk"} <= rows.keys()
    assert rows["sait"]["status"] == "unreachable"  # its default point (block 3 of 4) cannot reach 0.65
    assert all(0 < rows[m]["fidelity"] < 1 for m in rows if rows[m]["status"] == "ok" and m != "dense")
    drawn = sorted(p.name for p in tmp_path.glob("segmentation-*.png"))
    methods = sorted(("tome", "evit", "ppt", "random", "topk"))  # STAR: no calibration here
    assert drawn == [f"segmentation-{m}.png" for m in methods]
