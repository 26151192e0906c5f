"""Hugging Face encoders without a classifier (issue 32): a patched CLIP or SigLIP tower honours
output_hidden_states / output_attentions like ViT and DINOv2, and ``eval`` reports their MACs."""

from __future__ import annotations

import json

import pytest
import torch
from families import HF_SMALL, build

import vitprune


def _images(b: int) -> torch.Tensor:
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))


@pytest.mark.parametrize("name", ["hf-clip", "hf-siglip", "hf-vit", "hf-dinov2-reg"])
def test_patched_encoder_returns_the_hidden_states_asked_for(name):
    model, x = build(name), _images(2)
    with torch.no_grad():
        dense = model(x, output_hidden_states=True).hidden_states
        vitprune.apply(model, "tome", r=2)
        patched = model(x, output_hidden_states=True).hidden_states
        model.config.output_hidden_states = True  # the config's default is honoured too
        from_config = model(x).hidden_states
    assert len(dense) == 5 and patched is not None and len(patched) == 5
    assert [h.shape[1] for h in patched] == [dense[0].shape[1] - 2 * i for i in range(5)]  # r=2 per block
    assert [h.shape[1] for h in from_config] == [h.shape[1] for h in patched]
    torch.testing.assert_close(patched[0], dense[0])


def test_patched_clip_returns_attention_maps_with_eager_attention():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = tf.CLIPVisionConfig(intermediate_size=128, attn_implementation="eager", **HF_SMALL)
    model, x = tf.CLIPVisionModel(config).eval(), _images(2)
    vitprune.apply(model, "evit", keep=0.5, layers=[1, 2])
    with torch.no_grad():
        out = model(x, output_attentions=True)
    assert out.attentions is not None
    assert [a.shape[-1] for a in out.attentions] == [17, 17, 10, 7]  # EViT: half kept + one fused, twice
    vitprune.remove(model)
    with torch.no_grad():
        assert len(model(x, output_attentions=True).attentions) == 4


def _fashion_mnist():
    from vitprune.data.fashion_mnist import resolve_root

    if not (resolve_root() / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed")


@pytest.mark.parametrize("name", ["hf-clip", "hf-dinov2-reg"])
def test_eval_of_a_headless_encoder_reports_macs_and_says_why_no_accuracy(name, tmp_path, capsys):
    _fashion_mnist()
    from vitprune.cli import main

    build(name).save_pretrained(tmp_path)
    argv = ["eval", "--model", f"hf:{tmp_path}", "--method", "tome", "-p", "r=2", "--limit", "64", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert "top1" not in result and "without a classification head" in result["accuracy"]
    assert result["n"] == 64 and 0.5 < result["macs_ratio"] < 0.95  # r=2 per block on 16 patches


def test_evaluate_refuses_a_headless_model_in_one_line():
    from vitprune.measure.evaluate import evaluate

    batch = [(_images(2), torch.tensor([0, 1]))]
    with pytest.raises(ValueError, match="CLIPVisionModel is an encoder without a classification") as err:
        evaluate(build("hf-clip"), batch, progress=False)
    assert "\n" not in str(err.value)
