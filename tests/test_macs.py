"""MACs from real token counts: paper figures, an independent counter, and the knob solvers."""

import copy

import pytest
import timm
import torch
from conftest import images, make_model

import vitprune
from vitprune.measure import macs
from vitprune.measure.formula import schedule_macs
from vitprune.vit import describe


@pytest.fixture(scope="module")
def deit_s():
    torch.manual_seed(0)
    return timm.create_model("deit_small_patch16_224").eval()


def _gmacs(model, batch=1):
    return macs(model, torch.rand(batch, 3, 224, 224)).mean / 1e9


def test_dense_deit_small_and_tiny():
    assert _gmacs(timm.create_model("deit_small_patch16_224")) == pytest.approx(4.6, rel=0.01)
    assert _gmacs(timm.create_model("deit_tiny_patch16_224")) == pytest.approx(1.26, rel=0.01)


def test_tome_r13_on_deit_small(deit_s):
    model = vitprune.apply(copy.deepcopy(deit_s), "tome", r=13)
    assert _gmacs(model) == pytest.approx(2.70, rel=0.01)


def _fvcore_gmacs(model, x):
    from fvcore.nn import FlopCountAnalysis

    model = copy.deepcopy(model)
    for blk in model.blocks:  # fvcore cannot see inside fused SDPA: count the explicit matmuls
        blk.attn.fused_attn = False
    counter = FlopCountAnalysis(model, x)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return counter.total() / 1e9


@pytest.mark.parametrize("r", [0, 13])
def test_agrees_with_fvcore_on_deit_small(deit_s, r):
    pytest.importorskip("fvcore")
    model = vitprune.apply(copy.deepcopy(deit_s), "tome", r=r)
    x = torch.rand(1, 3, 224, 224)
    ours = macs(model, x).mean / 1e9
    assert ours == pytest.approx(_fvcore_gmacs(model, x), rel=0.01)


@pytest.mark.parametrize(
    "method,config", [("tome", {"r": 3, "inflection": -1.0}), ("evit", {"keep": [0.5, 0.7, 0.9]})]
)
def test_prediction_equals_measured_counts(method, config):
    model = vitprune.apply(make_model("deit_distilled"), method, **config)
    spec = describe(model)
    predicted = schedule_macs(spec, model.vitprune.method.schedule(spec))
    assert macs(model, images()).mean == pytest.approx(predicted, rel=1e-12)


@pytest.mark.parametrize("method", ["tome", "evit"])
@pytest.mark.parametrize("target", [0.8, 0.6])
def test_macs_target_is_met(method, target):
    model = vitprune.apply(make_model("vit", depth=12, img_size=128), method, macs=target)
    assert macs(model, images(size=128)).ratio == pytest.approx(target, abs=0.02)


def test_absolute_gmacs_target(deit_s):
    model = vitprune.apply(copy.deepcopy(deit_s), "tome", macs="2.7G")
    assert model.vitprune.method.per_layer == [13] * 12
    model = vitprune.apply(model, "evit", macs=2.94)
    assert _gmacs(model) == pytest.approx(2.94, rel=0.02)


def _adaptive(setting: str):
    """Each input-adaptive setting, on a model sharp enough for images to keep different counts."""
    from test_star import _calibration

    model = make_model("vit", depth=4)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4)
    if setting == "star":
        return vitprune.apply(model, "star", prior=_calibration(4, 16), alpha=0.8, r_min=0.5, adaptive=True)
    config = {"tau": 1.0} if setting == "value" else {"mass": 0.7}
    return vitprune.apply(model, "sait", layer=1, mode=setting, **config)


@pytest.mark.parametrize("setting", ["star", "value", "mass"])
def test_adaptive_gmacs_are_the_mean_over_the_evaluated_images_with_executed_beside(setting):
    from vitprune.data import TensorImageDataset, build_loader
    from vitprune.measure.evaluate import evaluate_macs

    model = _adaptive(setting)
    assert model.vitprune.method.per_image_counts
    x = images(batch=12, seed=5)
    data = TensorImageDataset((x * 255).to(torch.uint8), torch.zeros(12, dtype=torch.long), model)
    alone = [macs(model, data[i][0][None]).mean for i in range(12)]  # one image: no padding
    assert len(set(alone)) > 1
    result = evaluate_macs(model, build_loader(data, 4), progress=False)
    assert result["gmacs"] == pytest.approx(sum(alone) / 12 / 1e9, rel=1e-12)
    assert result["executed_gmacs"] > result["gmacs"]  # padded to each batch's longest image
    single = evaluate_macs(model, build_loader(data, 1), progress=False)
    assert single["executed_gmacs"] == pytest.approx(single["gmacs"]) == pytest.approx(result["gmacs"])
