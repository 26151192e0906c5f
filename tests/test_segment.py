"""Issue 31: segmenters (a ViT whose head classifies every patch: Segmenter's linear decoder) trained
and scored on fashion-mnist-clutter's label maps, under every token method with the full grid restored."""

from __future__ import annotations

import copy
import json

import pytest
import timm
import torch
from safetensors.torch import save_file

import vitprune
from vitprune.cli import main
from vitprune.data.batched import build_loader
from vitprune.models.build import load_backbone
from vitprune.segment.data import SegmentationDataset, segmentation_dataset
from vitprune.segment.evaluate import evaluate_segmentation
from vitprune.segment.head import is_segmenter, pixel_logits, segmenter_kwargs
from vitprune.segment.metrics import confusion, scores

TINY = {"img_size": 56, "patch_size": 4, "depth": 4, "embed_dim": 48, "num_heads": 3, "in_chans": 1}
CLASSES = 11


def _segmenter(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", **TINY, **segmenter_kwargs(CLASSES)).eval()


def _loader(model, n: int = 24, batch: int = 8):
    """Random canvases with blob-shaped label maps: a scoring test needs maps, not Fashion-MNIST."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 56, 56), generator=g, dtype=torch.uint8)
    coarse = torch.randint(0, CLASSES, (n, 1, 7, 7), generator=g).float()
    maps = torch.nn.functional.interpolate(coarse, size=(56, 56), mode="nearest")[:, 0].to(torch.uint8)
    return build_loader(SegmentationDataset(images, maps, CLASSES, model), batch)


def test_pixel_logits_put_each_patch_on_its_own_pixels():
    """A 7x14 grid on 28x56 pixels (raster order, prefix skipped): class 0 on the top rows of patches and
    class 1 below, class 2 on the right half; bilinear weights put every pixel with its patch's rows."""
    rows, cols = torch.meshgrid(torch.arange(7), torch.arange(14), indexing="ij")
    logits = torch.stack([(rows < 4).float(), (rows >= 4).float(), 2.0 * (cols >= 7)], -1).reshape(1, 98, 3)
    prefix = torch.tensor([[[0.0, 0.0, 9.0]]])  # a prefix token that would win everywhere if read
    pixels = pixel_logits(torch.cat([prefix, logits], 1), 1, (28, 56)).argmax(1)[0]
    assert pixels.shape == (28, 56)
    assert (pixels[:, 28:] == 2).all()  # 2.0 beats the row classes' 1.0 on every right-half pixel
    assert (pixels[:15, :28] == 0).all() and (pixels[17:, :28] == 1).all()  # rows 0-3 vs 4-6 of patches
    with pytest.raises(ValueError, match="do not form a grid"):
        pixel_logits(torch.zeros(1, 1 + 97, 3), 1, (28, 56))


def test_scores_against_counting_pixels_by_hand():
    g = torch.Generator().manual_seed(1)
    truth = torch.randint(0, 5, (3, 16, 16), generator=g)
    predicted = torch.where(torch.rand(3, 16, 16, generator=g) < 0.7, truth, torch.randint(0, 6, (3, 16, 16)))
    result = scores(confusion(predicted, truth, 7))
    ious = []
    for c in range(7):
        union = ((predicted == c) | (truth == c)).sum().item()
        inter = ((predicted == c) & (truth == c)).sum().item()
        expected = None if union == 0 else 100 * inter / union
        assert (result["iou"][c] is None) == (expected is None)
        if expected is not None:
            assert result["iou"][c] == pytest.approx(expected, abs=1e-4)
            ious.append(expected)
    assert result["iou"][6] is None  # class 6 is nowhere: not in the mean
    assert result["miou"] == pytest.approx(sum(ious) / len(ious))
    assert result["pixel_acc"] == pytest.approx(100 * (predicted == truth).float().mean().item())


def test_zero_reduction_scores_as_dense_with_features_unchanged():
    model = _segmenter()
    dense = evaluate_segmentation(model, _loader(model), reference=copy.deepcopy(model), progress=False)
    assert dense["fidelity"] == pytest.approx(1.0, abs=1e-6) and dense["macs_ratio"] == 1.0
    patched = vitprune.apply(copy.deepcopy(model), "tome", r=0, dense=True)
    same = evaluate_segmentation(patched, _loader(model), reference=model, progress=False)
    assert same["miou"] == dense["miou"] and same["pixel_acc"] == dense["pixel_acc"]
    assert same["fidelity"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["tome", "evit", "ppt", "topk", "random", "resize", "sait"])
def test_every_method_scores_every_pixel_at_fewer_macs(method):
    model = _segmenter()
    extra = {"layer": 1} if method == "sait" else {}  # its default point (block 3) cannot reach 0.65 here
    patched = vitprune.apply(copy.deepcopy(model), method, macs=0.65, dense=True, **extra)
    result = evaluate_segmentation(patched, _loader(model), reference=model, progress=False)
    assert result["n"] == 24 and result["macs_ratio"] < 0.8
    assert 0.0 < result["fidelity"] < 1.0 and 0.0 <= result["miou"] <= 100.0


def test_a_method_without_dense_outputs_is_refused_by_name():
    model = _segmenter()
    patched = vitprune.apply(copy.deepcopy(model), "evit", macs=0.65)
    with pytest.raises(ValueError, match="dense=True"):
        evaluate_segmentation(patched, _loader(model), progress=False)


def test_label_maps_batch_with_their_images_and_data_without_them_is_refused():
    model = _segmenter()
    images, maps = next(iter(_loader(model, n=8, batch=4)))
    assert images.shape == (4, 1, 56, 56) and images.dtype == torch.float32
    assert maps.shape == (4, 56, 56) and maps.dtype == torch.uint8
    with pytest.raises(ValueError, match="fashion-mnist-clutter"):
        segmentation_dataset("fashion-mnist", "test", model)


def test_a_backbone_loads_everything_but_the_head(tmp_path):
    torch.manual_seed(3)
    classifier = timm.create_model("vit_tiny_patch16_224", **TINY, num_classes=10)
    save_file(classifier.state_dict(), tmp_path / "classifier.safetensors")
    model = _segmenter(seed=4)
    head = copy.deepcopy(model.head.state_dict())
    load_backbone(model, tmp_path / "classifier.safetensors")
    assert is_segmenter(model) and not is_segmenter(classifier)
    for key, value in classifier.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(model.state_dict()[key], value), key
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in head.items())


def test_train_a_segmenter_then_evaluate_it_with_a_method(tmp_path, capsys):
    torch.manual_seed(5)
    save_file(
        timm.create_model("vit_tiny_patch16_224", **TINY, num_classes=10).state_dict(),
        tmp_path / "classifier.safetensors",
    )
    kwargs = [f"--model-kwargs={k}={v}" for k, v in TINY.items()]
    model = ["--model", "vit_tiny_patch16_224", *kwargs]
    common = ["--data", "fashion-mnist-clutter", "--limit", "32", "--json"]
    refused = ["train", "--task", "segment", *model, *common, "--out", str(tmp_path / "x"), "--mixup", "0.2"]
    assert main(refused) != 0 and "--mixup" in capsys.readouterr().err
    run = tmp_path / "run"
    argv = ["train", "--task", "segment", *model, *common, "--out", str(run), "--epochs", "1"]
    assert main([*argv, "--batch-size", "16", "--backbone", str(tmp_path / "classifier.safetensors")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["global_step"] == 2 and summary["metrics"]["n"] == 32
    assert set(summary["metrics"]) >= {"miou", "pixel_acc", "iou"}
    weights = str(run / "last" / "model.safetensors")
    seg_kwargs = [*kwargs, "--model-kwargs=global_pool=''", "--num-classes", "11"]
    argv = ["eval", "--model", "vit_tiny_patch16_224", *seg_kwargs, "--checkpoint", weights, *common]
    assert main([*argv, "--method", "evit", "--macs", "0.65"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["method"] == "evit" and evaluated["n"] == 32 and 0 < evaluated["fidelity"] < 1
    assert evaluated["macs_ratio"] == pytest.approx(0.65, abs=0.05)


def test_a_sweep_of_a_segmenter_scores_mean_iou_and_fidelity(tmp_path):
    from vitprune.sweep.run import SweepSettings, sweep, write_reports

    model = _segmenter()
    settings = SweepSettings(
        model="tiny-segmenter", data="random", methods=["tome", "resize"], macs=[0.65], speed=False
    )
    settings.eval_batch = 8
    payload = sweep(model, _loader(model).dataset, settings, tmp_path, progress=False)
    rows = {r["method"]: r for r in payload["rows"]}
    assert {"miou", "pixel_acc"} <= rows["dense"].keys() and "fidelity" not in rows["dense"]
    assert 0 < rows["tome"]["fidelity"] < 1 and 0 < rows["resize"]["fidelity"] < 1
    markdown = open(write_reports(tmp_path, payload)["markdown"]).read()
    assert "Mean-IoU points each method beats" in markdown and "mean IoU and pixel accuracy" in markdown


def test_segmentation_maps_draw_tokens_beside_predictions(tmp_path):
    from vitprune.viz.segmentation import save_segmentation_maps

    model = _segmenter()
    patched = vitprune.apply(copy.deepcopy(model), "evit", macs=0.65, dense=True, trace_source=True)
    images, maps = next(iter(_loader(model, n=3, batch=3)))
    names = [f"class {i}" for i in range(CLASSES)]
    path = save_segmentation_maps(patched, model, images, maps, tmp_path / "seg.png", names, "evit at 0.65")
    assert path.exists() and path.stat().st_size > 10_000
