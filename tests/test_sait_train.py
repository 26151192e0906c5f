"""SaiT (reconstructed) dense/sparse training: both passes train, settings are restored, resume is exact."""

import pytest
import torch
from test_train import HYPER, tiny_vit, train_loader

import vitprune
from vitprune.train import fit
from vitprune.train.sait import DenseSparseObjective


def _sait(seed=0):
    model = tiny_vit(seed=seed, depth=4, img_size=28, patch_size=4)
    return vitprune.apply(model, "sait", layer=1, mode="mass", mass=0.9)


@pytest.mark.parametrize("options", [{"kd": 1.0, "attn": 0.5}, {"kd": 0.0, "alternate": True}])
def test_dense_sparse_training_runs_and_restores_the_setting(tmp_path, options):
    model = _sait()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    objective = DenseSparseObjective(model, keeps=(0.5, 0.7), **options)
    result = fit(model, train_loader(model), out_dir=tmp_path, objective=objective, **HYPER)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result["history"])
    assert (model.sait.mode, model.sait.mass) == ("mass", 0.9)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("blocks.1.") for k in changed) and any(k.startswith("blocks.3.") for k in changed)


def test_resume_is_exact_with_the_random_density_draw(tmp_path):
    straight = _sait()
    fit(
        straight,
        train_loader(straight),
        out_dir=tmp_path / "a",
        objective=DenseSparseObjective(straight),
        **HYPER,
    )
    first = _sait()
    fit(
        first,
        train_loader(first),
        out_dir=tmp_path / "b",
        objective=DenseSparseObjective(first),
        **{**HYPER, "epochs": 1},
    )
    resumed = _sait(seed=7)
    fit(
        resumed,
        train_loader(resumed),
        out_dir=tmp_path / "b",
        resume=tmp_path / "b",
        objective=DenseSparseObjective(resumed),
        **HYPER,
    )
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_needs_a_sait_model():
    with pytest.raises(ValueError, match="patched with"):
        DenseSparseObjective(tiny_vit())


def test_teacher_logits_also_anchor_the_dense_pass():
    model = _sait()
    images, targets = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    teacher = torch.randn(4, model.num_classes)
    losses = {}
    for kd in (0.0, 1.0):
        torch.manual_seed(0)
        dense_only = DenseSparseObjective(model, keeps=(0.5,), kd=kd, alternate=True)
        losses[kd] = dense_only(model, images, targets, teacher).item()  # step 0 of alternate: dense
    torch.manual_seed(0)
    objective = DenseSparseObjective(model, keeps=(0.5,), kd=1.0, alternate=True)
    without_teacher = objective(model, images, targets, None).item()
    assert without_teacher == pytest.approx(losses[0.0])
    assert losses[1.0] > losses[0.0]
