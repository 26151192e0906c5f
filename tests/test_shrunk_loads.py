"""A structured (``--structure neuron-head``) DIMAP output loads wherever a model loads, from its own
config: eval, macs, bench, sweep, train, visualize, and with ``--method`` on top."""

import json

import pytest
from PIL import Image

from vitprune.cli import main
from vitprune.models.load import load_model
from vitprune.train import load_trained

ARCH = ["--model", "vit_tiny_patch16_224"] + [
    arg
    for kv in ("img_size=28", "patch_size=4", "in_chans=1", "depth=2", "embed_dim=48", "num_heads=3")
    for arg in ("--model-kwargs", kv)
]


@pytest.fixture(scope="module")
def shrunk(tmp_path_factory):
    root = tmp_path_factory.mktemp("shrunk")
    out = root / "small"
    argv = ["prune", *ARCH, "--num-classes", "10", "--params-removed", "0.5", "--structure", "neuron-head"]
    assert main([*argv, "--scope", "layer", "--out", str(out), "--json"]) == 0
    for cls in ("a", "b"):  # RGB images for a 1-channel model: converted to its channels
        (root / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (30, 30), color=(40 * i, 200, 10)).save(root / "data" / cls / f"{i}.png")
    return out, root / "data"


def _json(capsys, *argv) -> dict:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out[out.index("{") :])


def test_load_model_rebuilds_from_its_own_files(shrunk):
    out, _ = shrunk
    for checkpoint in (out, out / "model.safetensors"):
        model = load_model("vit_tiny_patch16_224", checkpoint=checkpoint)
        assert model.blocks[0].attn.num_heads < 3 or model.blocks[0].mlp.fc1.out_features < 192
    with pytest.raises(ValueError, match="carries its own architecture"):
        load_model("vit_tiny_patch16_224", checkpoint=out, img_size=32)


@pytest.mark.parametrize("method", [[], ["--method", "tome", "-p", "r=2"]])
def test_eval_macs_and_bench_load_it(capsys, shrunk, method):
    out, data = shrunk
    base = ["--model", "vit_tiny_patch16_224", "--checkpoint", out / "model.safetensors", *method]
    result = _json(capsys, "eval", *base, "--data", data, "--json")
    assert result["n"] == 6 and result["method"] == (method[1] if method else None)
    assert _json(capsys, "macs", *base, "--json")["gmacs"] == pytest.approx(result["gmacs"])
    rows = _json(
        capsys, "bench", *base, "--batch-sizes", "1", "--precisions", "fp32", "--rounds", "1", "--json"
    )
    assert len(rows["rows"]) == (3 if method else 2)  # the model it was pruned from, first


def test_sweep_visualize_and_train_load_it(capsys, shrunk, tmp_path):
    out, data = shrunk
    base = ["--model", "vit_tiny_patch16_224", "--checkpoint", out]
    sweep = ["sweep", *base, "--data", data, "--methods", "tome", "--macs", "0.8", "--no-speed"]
    _json(capsys, *sweep, "--eval-batch", "3", "--out", tmp_path / "sweep", "--json")
    png = tmp_path / "maps.png"
    assert (
        main(
            [
                str(a)
                for a in [
                    "visualize",
                    *base,
                    "--method",
                    "evit",
                    "--macs",
                    "0.8",
                    "--data",
                    data,
                    "--images",
                    "2",
                    "--out",
                    png,
                ]
            ]
        )
        == 0
    )
    assert png.stat().st_size > 0
    capsys.readouterr()
    train = ["train", *base, "--data", data, "--epochs", "1", "--batch-size", "3", "--out", tmp_path / "run"]
    _json(capsys, *train, "--json")
    trained = load_trained(tmp_path / "run")
    assert sum(p.numel() for p in trained.parameters()) == sum(
        p.numel() for p in load_model("x", checkpoint=out).parameters()
    )
