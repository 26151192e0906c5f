"""The model zoo: publishing a run measures its card; shipped models reproduce their card."""

import json

import pytest
import torch
from test_train import TINY, tiny_vit, train_loader

import vitprune
from vitprune import zoo
from vitprune.cli.main import parser
from vitprune.cli.options import build_model, method_config
from vitprune.data.fashion_mnist import resolve_root
from vitprune.train import fit, load_trained, model_spec
from vitprune.zoo import publish

needs_fmnist = pytest.mark.skipif(
    not (resolve_root() / "t10k-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST not installed"
)


def _train_and_publish(model, spec: dict, run, name: str, lr: float) -> None:
    """One epoch of ``vitprune.train.fit`` into ``run``, then ``publish`` it as zoo model ``name``."""
    fit(model, train_loader(model), epochs=1, lr=lr, out_dir=run, model_spec=spec, progress=False)
    publish.main([str(run), name, "--command", "vitprune train ...", "--notes", "a test"])


@needs_fmnist
def test_publish_writes_measured_card_and_loads_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo.catalog, "ZOO_DIR", tmp_path / "zoo")
    (tmp_path / "zoo").mkdir()
    model = tiny_vit()
    spec = model_spec("vit_tiny_patch16_224", {**TINY, "num_classes": 10})
    _train_and_publish(model, spec, tmp_path / "run", "tiny-test", lr=1e-3)
    card = json.loads((tmp_path / "zoo" / "tiny-test.json").read_text())
    assert card["model"] == "vit_tiny_patch16_224" and card["epochs"] == 1 and card["test_images"] == 10_000
    assert card["params"] == sum(p.numel() for p in model.parameters()) and card["gmacs"] > 0
    assert card["executed_gmacs"] == card["gmacs"]  # counted on the 10,000 test images themselves
    assert card["notes"] == "a test"
    loaded = vitprune.zoo.load("tiny-test")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(KeyError, match="tiny-test"):
        zoo.card("no-such-model")

    # a run started from the zoo model, trained with a token method: the card names the timm
    # architecture and the method, and loading applies it
    derived = vitprune.apply(zoo.load("tiny-test"), "sait", layer=1)
    sait_spec = model_spec("tiny-test", {"num_classes": 10}, "sait", {"layer": 1})
    _train_and_publish(derived, sait_spec, tmp_path / "sait", "tiny-test-sait", lr=1e-4)
    card = zoo.card("tiny-test-sait")
    assert card["model"] == "vit_tiny_patch16_224" and card["kwargs"]["embed_dim"] == TINY["embed_dim"]
    assert (card["method"], card["method_config"]) == ("sait", {"layer": 1})
    assert card["evaluated_at"] == {"mode": "ratio", "keep": 0.7} and card["dense_mode"]["n"] == 10_000
    loaded = zoo.load("tiny-test-sait")
    assert loaded.sait.layers == (1,) and loaded.sait.set(mode="dense").mode == "dense"
    # --method sait on it again keeps its pruning point unless -p overrides it; other methods start clean
    assert zoo.method_defaults("tiny-test-sait", "sait") == {"layer": 1}
    assert zoo.method_defaults("tiny-test-sait", "tome") == zoo.method_defaults("tiny-test", "sait") == {}
    args = parser().parse_args(["eval", "--model", "tiny-test-sait", "--method", "sait", "-p", "mode=dense"])
    assert build_model(args).sait.layers == (1,)
    train_args = parser().parse_args(["train", "--model", "tiny-test-sait", "--method", "sait", "--out", "x"])
    assert method_config(train_args) == {"layer": 1}  # train and visualize read the same settings

    # --average: the card's weights are the mean of the runs' (SWA), and a run of another model is refused
    other = tiny_vit()
    run_b = tmp_path / "b"
    fit(other, train_loader(other), epochs=1, lr=3e-3, out_dir=run_b, model_spec=spec, progress=False)
    publish.main([str(tmp_path / "run"), "tiny-avg", "--command", "c", "--average", str(tmp_path / "b")])
    card, averaged = zoo.card("tiny-avg"), zoo.load("tiny-avg").state_dict()
    assert card["averaged_with"] == [{"run": str(tmp_path / "b"), "epoch": 1}]
    runs = [load_trained(tmp_path / r).state_dict() for r in ("run", "b")]
    assert not torch.equal(runs[0]["head.weight"], runs[1]["head.weight"])
    for name, tensor in averaged.items():
        torch.testing.assert_close(tensor, (runs[0][name] + runs[1][name]) / 2, rtol=0, atol=1e-7)
    with pytest.raises(SystemExit):
        publish.main([str(tmp_path / "sait"), "x", "--command", "c", "--average", str(tmp_path / "run")])
    assert "not " + str(tmp_path / "sait") in capsys.readouterr().err


# Top-1/top-5 (%) of `vitprune eval --model NAME --limit 1000 --json` (a segmenter: mean IoU and pixel
# accuracy): the same weights, preprocessing
# and evaluation as the card's 10,000 images at a tenth of the time (the full check took 196 s of a
# 14-minute suite for fmnist-vit-196 on a 2-core AVX2 CPU). A model without an entry is checked
# against its card on every test image.
FIRST_1000 = {
    "fmnist-vit": (91.0, 99.9),
    "fmnist-vit-196": (92.6, 99.9),
    "fmnist-vit-sait": (90.8, 99.8),
    "fmnist-swin": (92.2, 99.9),
    "clutter-vit-196": (90.0, 100.0),
    "clutter-vit-196-sait": (89.3, 100.0),
    "clutter-seg-196": (72.9437, 94.5833),  # mean IoU, pixel accuracy
}
# Segmentation scores sum millions of per-pixel argmaxes: one pixel flipping on a near-tie under other
# kernels moves them by about 1e-4, so they are compared to 1e-2 (the same on AVX-512, AVX2 and default).
TOLERANCE = {"classification": 1e-9, "segmentation": 1e-2}


@needs_fmnist
@pytest.mark.parametrize("name", zoo.names())
def test_shipped_model_reproduces_its_card(name, capsys):
    from vitprune.cli import main

    card = zoo.card(name)
    limit = ["--limit", "1000"] if name in FIRST_1000 else []
    assert main(["eval", "--model", name, "--data", card["data"], *limit, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    task = card.get("task", "classification")
    scores = ("miou", "pixel_acc") if task == "segmentation" else ("top1", "top5")
    expected = FIRST_1000.get(name, tuple(card[key] for key in scores))
    assert result["n"] == (1000 if limit else card["test_images"])
    for key, value in zip(scores, expected, strict=True):
        assert result[key] == pytest.approx(value, abs=TOLERANCE[task]), key


def test_a_zoo_name_as_star_prior_is_the_calibration_shipped_beside_it(tmp_path, monkeypatch, capsys):
    shipped = zoo.calibration("fmnist-vit")
    assert shipped == zoo.ZOO_DIR / "calibration" / "fmnist-vit-star.safetensors" and shipped.exists()
    assert zoo.resolve({"prior": "fmnist-vit", "alpha": 0.5}) == {"prior": shipped, "alpha": 0.5}
    assert zoo.resolve({"prior": "no-such-model"}) == {"prior": "no-such-model"}
    from vitprune.cli import main

    argv = ["macs", "--model", "fmnist-vit", "--method", "star", "-p", "prior=fmnist-vit", "--json"]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["ratio"] < 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fmnist-vit.safetensors").touch()  # a calibration file of that name comes first
    assert zoo.resolve({"prior": "fmnist-vit"}) == {"prior": "fmnist-vit"}
