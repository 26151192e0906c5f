"""Every artifact vitprune writes reloads to bit-identical outputs; damaged files fail clearly; no pickles.

Covered elsewhere and not repeated: calibration tensors and a garbage calibration (test_star), DIMAP
masks, Swin pruned and shrunk models, truncated masks (test_dimap_io, test_dimap_structured), a ToMe
fine-tune rebuilt from its checkpoint and a flipped weight byte (test_train), an interrupted sweep
resumed (test_sweep). Every test here runs with unpickling made impossible.
"""

import ast
import pickle
import shutil
from pathlib import Path

import pytest
import timm
import torch
from conftest import images, make_model
from fuzz_settings import Prior
from test_sweep import data, dense, settings  # noqa: F401 - fixtures
from test_train import HYPER, TINY, tiny_vit, train_loader

import vitprune
from vitprune.calibrate.artifact import save_calibration
from vitprune.files.state_dict import CheckpointError
from vitprune.sweep.files import read_payload, write_tables
from vitprune.sweep.run import sweep
from vitprune.train import fit, load_trained, model_spec
from vitprune.train.sait import DenseSparseObjective
from vitprune.weights import (
    apply_masks,
    dimap_masks,
    load_masks,
    load_pruned,
    load_shrunk,
    make_meta,
    save_pruned,
    save_shrunk,
    shrink,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SRC = Path(__file__).resolve().parents[1] / "src" / "vitprune"


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a loader tried to unpickle")

    for owner, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(owner, name, refuse)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_middle_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def garble_start(path: Path) -> None:
    """Overwrite the first bytes: a safetensors header length, or the opening of a JSON file."""
    path.write_bytes(b"\xff" * 8 + path.read_bytes()[8:])


def test_star_prior_from_disk_gives_the_in_memory_outputs(tmp_path):
    calibration = Prior(depth=4, patches=16, seed=3).calibration()
    save_calibration(calibration, tmp_path / "prior")
    x = images()
    for options in ({"r_min": 0.5}, {"r_min": 0.4, "alpha": 0.6, "adaptive": True}):
        from_memory = vitprune.apply(make_model("registers"), "star", prior=calibration, **options)
        from_disk = vitprune.apply(make_model("registers"), "star", prior=tmp_path / "prior", **options)
        with torch.no_grad():
            assert torch.equal(from_disk(x), from_memory(x))


@pytest.mark.parametrize(
    "name,damage",
    [("prior.safetensors", truncate), ("prior.safetensors", garble_start), ("prior.json", garble_start)],
)
def test_damaged_calibration_is_a_clear_error(tmp_path, name, damage):
    save_calibration(Prior(depth=4, patches=16, seed=0).calibration(), tmp_path / "prior")
    damage(tmp_path / name)
    with pytest.raises(CheckpointError, match=name):
        vitprune.apply(make_model("vit"), "star", prior=tmp_path / "prior")


def _vit():
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10
    ).eval()


META = make_meta("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 10})


def _saved_vit(tmp_path, kind: str) -> tuple[torch.nn.Module, Path]:
    model = _vit()
    if kind == "pruned":
        masks = dimap_masks(model, params=0.5)
        apply_masks(model, masks)
        return model, save_pruned(model, masks, tmp_path / kind, {}, META)
    return model, save_shrunk(model, shrink(model, 0.4), tmp_path / kind, {}, META)


@pytest.mark.parametrize("kind", ["pruned", "shrunk"])
def test_dimap_vit_reloads_bit_identical_with_and_without_a_token_method(tmp_path, kind):
    model, out = _saved_vit(tmp_path, kind)
    reloaded = (load_pruned if kind == "pruned" else load_shrunk)(out)
    x = images(size=32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
        vitprune.apply(reloaded, "tome", r=3)
        assert torch.equal(reloaded(x), vitprune.apply(model, "tome", r=3)(x))
    if kind == "pruned":
        masks, weights = load_masks(out), model.state_dict()
        assert all(torch.equal(mask, weights[name] != 0) for name, mask in masks.items())


@pytest.mark.parametrize(
    "kind,name,damage",
    [
        ("pruned", "model.safetensors", truncate),
        ("pruned", "model.safetensors", garble_start),
        ("pruned", "meta.json", garble_start),
        ("shrunk", "model.safetensors", truncate),
        ("shrunk", "structure.json", garble_start),
    ],
)
def test_damaged_dimap_output_is_a_clear_error(tmp_path, kind, name, damage):
    _, out = _saved_vit(tmp_path, kind)
    damage(out / name)
    with pytest.raises(CheckpointError, match=name):
        (load_pruned if kind == "pruned" else load_shrunk)(out)


def test_sait_training_checkpoint_rebuilds_every_density_bit_identical(tmp_path):
    shape = {**TINY, "depth": 4, "patch_size": 4, "num_classes": 10}
    config = {"layer": 1, "mode": "mass", "mass": 0.9}
    model = vitprune.apply(tiny_vit(depth=4, patch_size=4), "sait", **config)
    spec = model_spec("vit_tiny_patch16_224", shape, "sait", config)
    objective = DenseSparseObjective(model, keeps=(0.5, 0.7))
    fit(
        model,
        train_loader(model),
        out_dir=tmp_path,
        objective=objective,
        model_spec=spec,
        **{**HYPER, "epochs": 1},
    )
    rebuilt, model = load_trained(tmp_path), model.eval()
    x = torch.randn(4, 1, 28, 28)
    for density in ({}, {"mode": "dense"}, {"mode": "ratio", "keep": 0.5}, {"mode": "value", "tau": 1.0}):
        model.sait.set(**density)
        rebuilt.sait.set(**density)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x)), density


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model = tiny_vit(method="tome")
    spec = model_spec("vit_tiny_patch16_224", {**TINY, "num_classes": 10}, "tome", {"r": 2})
    fit(model, train_loader(model, n=32), out_dir=out, model_spec=spec, **{**HYPER, "epochs": 1})
    return out


@pytest.mark.parametrize(
    "name,damage,says",
    [
        ("model.safetensors", truncate, "wrong size"),
        ("optimizer.safetensors", flip_middle_byte, "checksum"),
        ("rng.safetensors", truncate, "wrong size"),
        ("state.json", flip_middle_byte, "checksum"),
        ("checkpoint.json", truncate, "cannot read"),
    ],
)
def test_damaged_training_checkpoint_is_a_clear_error(trained, tmp_path, name, damage, says):
    run = shutil.copytree(trained, tmp_path / "run", symlinks=True)
    checkpoint = (run / "last").resolve()
    damage(checkpoint / name)
    with pytest.raises(CheckpointError, match=says):
        load_trained(checkpoint)
    model = tiny_vit(method="tome")
    with pytest.raises(CheckpointError, match="no complete checkpoint|checksum"):
        fit(model, train_loader(model, n=32), out_dir=run, resume=run, **HYPER)


def test_sweep_results_reload_to_identical_tables(dense, data, tmp_path):  # noqa: F811 - fixtures
    payload = sweep(
        dense, data, settings(methods=["tome", "sait"], macs=[0.7]), tmp_path / "a", progress=False
    )
    reloaded = read_payload(tmp_path / "a")
    assert reloaded == payload
    written = [p.read_bytes() for p in write_tables(tmp_path / "a", payload)]
    (tmp_path / "b").mkdir()
    assert [p.read_bytes() for p in write_tables(tmp_path / "b", reloaded)] == written


@pytest.mark.parametrize("damage,says", [(truncate, "cannot be read"), (garble_start, "cannot be read")])
def test_damaged_sweep_results_are_a_clear_error_on_resume(dense, data, tmp_path, damage, says):  # noqa: F811
    sweep(dense, data, settings(methods=["tome"], macs=[0.7]), tmp_path, progress=False)
    damage(tmp_path / "sweep.json")
    with pytest.raises(ValueError, match=f"sweep.json {says}.*--resume"):
        sweep(dense, data, settings(methods=["tome"], macs=[0.7]), tmp_path, resume=True, progress=False)


def _loads(call: ast.Call) -> str | None:
    """``owner.name`` of a call that can unpickle, unless it is torch.load with weights_only=True."""
    func = call.func
    if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
        return None
    name = f"{func.value.id}.{func.attr}"
    keywords = {k.arg: k.value for k in call.keywords}
    if name == "torch.load":
        safe = keywords.get("weights_only")
        return None if isinstance(safe, ast.Constant) and safe.value is True else name
    if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load"):
        return name
    allow = keywords.get("allow_pickle")  # numpy refuses pickles unless this says otherwise
    if name in ("np.load", "numpy.load") and allow is not None:
        return None if isinstance(allow, ast.Constant) and allow.value is False else name
    return None


def test_source_only_loads_pickles_weights_only():
    found = [
        f"{path.relative_to(SRC)}:{node.lineno} {_loads(node)}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _loads(node)
    ]
    assert found == []
