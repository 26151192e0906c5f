"""The model families of issue 19 (tests/families.py), random weights: identity at zero reduction,
bit-exact remove, every token method at batch 1 and 4 with the MACs it promises, batch-invariant
adaptive modes, and MACs that agree with torch's FlopCounterMode."""

from __future__ import annotations

import copy

import pytest
import torch
from families import HF, NO_CLASS_TOKEN, TIMM, build, flop_macs, main_output

import vitprune
from vitprune.measure import macs
from vitprune.methods.target import method_macs
from vitprune.vit import describe

MODELS = HF + TIMM
CLS_METHODS = {
    "evit": {"keep": 0.5, "layers": [1, 2]},
    "ppt": {"r": 3, "layers": [1, 2]},
    "star": {"alpha": 1.0, "rates": [1.0, 0.7, 0.7, 1.0]},
    "sait": {"layer": 1},
}


def _images(b: int) -> torch.Tensor:
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))


def _run(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name", MODELS)
def test_zero_reduction_gives_the_unpatched_output(name):
    model, x = build(name), _images(2)
    dense = main_output(_run(model, x))
    configs = [("tome", {"r": 0})] + ([("evit", {"keep": 1.0})] if name not in NO_CLASS_TOKEN else [])
    for method, config in configs:
        vitprune.apply(model, method, **config)
        torch.testing.assert_close(main_output(_run(model, x)), dense, atol=1e-5, rtol=0)
        with model.vitprune.recording():  # counting tokens runs every block through the adapter's halves
            torch.testing.assert_close(main_output(_run(model, x)), dense, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_remove_is_bit_identical(name):
    model, x = build(name), _images(2)
    before = copy.deepcopy(model.state_dict())
    classes = [type(m) for m in model.modules()]
    dense = _run(model, x)
    vitprune.apply(model, "tome", r=3)
    _run(model, x)
    vitprune.remove(model)
    assert [type(m) for m in model.modules()] == classes
    assert not any(k.startswith("_vp") for m in model.modules() for k in vars(m))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(main_output(_run(model, x)), main_output(dense))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", ["tome", *CLS_METHODS])
def test_every_method_runs_and_cuts_the_macs_it_promises(name, method):
    model = build(name)
    dense_type = type(_run(model, _images(1)))
    config = CLS_METHODS.get(method, {"r": 3})
    if name in NO_CLASS_TOKEN and method != "tome":
        with pytest.raises(ValueError, match="class_token=False"):
            vitprune.apply(model, method, **config)
        return
    vitprune.apply(model, method, **config)
    promised = method_macs(model.vitprune.method, describe(model))
    for b in (1, 4):
        x = _images(b)
        out = _run(model, x)
        assert type(out) is dense_type and torch.isfinite(main_output(out)).all()
        report = macs(model, x)
        assert report.mean < report.dense
        assert report.mean == pytest.approx(promised, rel=1e-9)


ADAPTIVE = {
    "sait": ({"layer": 1}, {"mode": "mass", "mass": 0.6}),
    "star": ({"alpha": 1.0, "rates": [1.0, 0.6, 0.8, 1.0], "adaptive": True}, None),
}


@pytest.mark.parametrize("name", [m for m in MODELS if m not in NO_CLASS_TOKEN])
@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_modes_are_batch_invariant(name, method):
    model = build(name)
    config, runtime = ADAPTIVE[method]
    vitprune.apply(model, method, **config)
    if runtime:
        model.sait.set(**runtime)
    x = _images(4)
    batched = main_output(_run(model, x))
    alone = torch.cat([main_output(_run(model, x[i : i + 1])) for i in range(4)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_macs_agree_with_flop_counter(name):
    model, x = build(name), _images(2)
    assert macs(model, x).mean == pytest.approx(flop_macs(model, x), rel=0.02)
    vitprune.apply(model, "tome", r=3)
    reduced = macs(model, x).mean
    assert reduced == pytest.approx(flop_macs(model, x), rel=0.02)


def test_cli_model_hf_path_loads_a_local_directory(tmp_path):
    pytest.importorskip("transformers")
    from vitprune.data.transforms import resolve_input_size
    from vitprune.models.load import load_model

    saved, x = build("hf-vit"), _images(2)
    saved.save_pretrained(tmp_path)
    model = load_model(f"hf:{tmp_path}")
    assert type(model) is type(saved) and resolve_input_size(model) == (3, 32, 32)
    torch.testing.assert_close(_run(model, x).logits, _run(saved, x).logits, atol=0, rtol=0)
    vitprune.apply(model, "tome", r=3)
    assert macs(model, x).ratio < 1
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(f"hf:{tmp_path}/missing")


def test_hf_model_is_evaluated_with_its_processors_normalisation(tmp_path):
    pytest.importorskip("transformers")
    import json

    from vitprune.data.transforms import data_config
    from vitprune.measure.evaluate import evaluate
    from vitprune.models.load import load_model

    build("hf-vit").save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )
    model = vitprune.apply(load_model(f"hf:{tmp_path}"), "tome", r=3)
    cfg = data_config(model)
    assert (
        cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 32, 32)
    )
    result = evaluate(model, [(_images(4), torch.tensor([0, 1, 2, 3]))], progress=False)
    assert result["n"] == 4 and 0 <= result["top1"] <= 100


def test_rotary_position_follows_the_token():
    from vitprune.tokens.families.eva import follow

    rope = torch.randn(6, 8)  # 6 patches, sin | cos of width 4 each
    pos = torch.tensor([[0, 3, 1, -1], [0, 6, 2, 4]])  # class token first; -1: a fused token
    out = follow(rope, pos, num_prefix=1)
    assert out.shape == (2, 1, 3, 8)
    torch.testing.assert_close(out[0, 0, :2], rope[[2, 0]])
    torch.testing.assert_close(out[0, 0, 2], torch.cat([torch.zeros(4), torch.ones(4)]))  # no rotation
    torch.testing.assert_close(out[1, 0], rope[[5, 1, 3]])
    mixed = follow(torch.randn(4, 6, 8), pos, num_prefix=1)  # per-head tables (rope_mixed)
    assert mixed.shape == (2, 4, 3, 8)


def test_relative_position_bias_follows_the_tokens():
    from vitprune.tokens.families.beit import gather_pairs

    table = torch.randn(1, 2, 5, 5)  # heads 2, class token + 4 patches
    pos = torch.tensor([[0, 3, 1], [0, 4, -1]])
    out = gather_pairs(table, pos)
    assert out.shape == (2, 2, 3, 3)
    torch.testing.assert_close(out[0], table[0][:, [0, 3, 1]][:, :, [0, 3, 1]])
    torch.testing.assert_close(out[1], table[0][:, [0, 4, 0]][:, :, [0, 4, 0]])  # -1 reads the class token's


def test_naflexvit_is_refused_with_the_reason():
    import timm

    model = timm.create_model(
        "naflexvit_base_patch16_gap", embed_dim=64, depth=2, num_heads=4, num_classes=10
    )
    with pytest.raises(vitprune.UnsupportedModelError, match="patch-validity mask"):
        vitprune.apply(model, "tome", r=2)


@pytest.mark.parametrize("name", ["hf-vit", "hf-dinov2-reg", "hf-clip", "hf-siglip"])
def test_hf_models_at_another_image_size(name):
    model, x = build(name), torch.randn(2, 3, 48, 40)
    kwargs = {} if name == "hf-dinov2-reg" else {"interpolate_pos_encoding": True}  # DINOv2 always does
    with torch.no_grad():
        dense = main_output(model(x, **kwargs))
        vitprune.apply(model, "tome", r=0, img_size=(48, 40))
        with model.vitprune.recording():
            torch.testing.assert_close(main_output(model(x, **kwargs)), dense, atol=1e-5, rtol=0)
        vitprune.apply(model, "tome", r=4, img_size=(48, 40))
        with model.vitprune.recording() as counts:
            assert main_output(model(x, **kwargs)).shape == dense.shape
    assert int(counts[-1].mlp[0]) == describe(model, (48, 40)).num_tokens - 16  # 4 blocks merged 4 each
