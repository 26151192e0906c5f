"""Structured DIMAP (whole heads and MLP units, physically removed) and 2:4 masks."""

import copy

import pytest
import timm
import torch
from test_dimap import SWIN, SWIN_KWARGS, tiny_images, tiny_swin

from vitprune.models.resize import keep_heads, keep_neurons
from vitprune.weights import load_shrunk, make_meta, nm_masks, save_shrunk, shrink
from vitprune.weights.scores import one_thread
from vitprune.weights.structured import collect_units, select


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _vit():
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, depth=2, num_classes=10, qk_norm=True
    ).eval()


@pytest.mark.parametrize("make, x", [(tiny_swin, tiny_images()), (_vit, torch.rand(2, 3, 32, 32))])
def test_keeping_every_unit_changes_nothing(make, x):
    model = make()
    dense = model(x)
    for unit in collect_units(model):
        block = model.get_submodule(unit.block)
        everything = torch.arange(unit.energy.numel())
        (keep_heads if unit.kind == "head" else keep_neurons)(block, everything, unit.block)
    assert torch.equal(model(x), dense)


@pytest.mark.parametrize("make, x", [(tiny_swin, tiny_images()), (_vit, torch.rand(2, 3, 32, 32))])
def test_shrunk_model_equals_dense_model_with_those_units_silenced(make, x):
    model = make()
    kept = select(collect_units(model), 0.5)
    silenced = copy.deepcopy(model)
    with torch.no_grad():  # a removed head/unit contributes nothing once its proj/fc2 columns are zero
        for unit in collect_units(silenced):
            block = silenced.get_submodule(unit.block)
            dropped = torch.ones(unit.energy.numel(), dtype=torch.bool)
            dropped[kept[unit.block]] = False
            if unit.kind == "head":
                proj = block.proj.weight.view(block.proj.out_features, block.num_heads, -1)
                proj[:, dropped] = 0
            else:
                block.fc2.weight[:, dropped] = 0
    shrink(model, 0.5)
    assert torch.allclose(model(x), silenced(x), atol=1e-5)


def test_shrink_removes_the_requested_share_per_module():
    model = tiny_swin()
    units = collect_units(model)
    before = {
        kind: sum(u.cost * u.energy.numel() for u in units if u.kind == kind) for kind in ("head", "neuron")
    }
    sizes = shrink(model, 0.5)
    after = {"head": 0, "neuron": 0}
    for block, size in sizes.items():
        unit = next(u for u in units if u.block == block)
        after[unit.kind] += unit.cost * size.get("num_heads", size.get("hidden", 0))
    for kind in before:
        removed = 1 - after[kind] / before[kind]
        cost = max(u.cost for u in units if u.kind == kind) / before[kind]
        assert abs(removed - 0.5) <= cost  # within one unit of the target
    assert all(size.get("num_heads", size.get("hidden")) >= 1 for size in sizes.values())
    attn = model.layers[2].blocks[0].attn
    assert attn.relative_position_bias_table.shape[1] == attn.num_heads
    assert attn.qkv.out_features == 3 * attn.num_heads * 24  # stage 3: width 192, 8 heads of 24


def test_layer_scope_removes_the_same_share_of_every_block_weakest_first():
    model = tiny_swin()
    units = collect_units(model)
    sizes = shrink(model, 0.5, scope="layer")
    for u in units:
        count = u.energy.numel()
        kept = sizes[u.block].get("num_heads", sizes[u.block].get("hidden"))
        assert kept == count - min(round(0.5 * count), count - 1)
    mlp = next(u for u in units if u.kind == "neuron")
    block = dict(model.named_modules())[mlp.block]
    survivors = mlp.energy.topk(block.fc1.out_features).indices.sort().values
    original = tiny_swin()  # same seed: the weights before shrinking
    rows = dict(original.named_modules())[mlp.block].fc1.weight[survivors]
    assert torch.equal(block.fc1.weight, rows)


def test_reloaded_shrunk_model_is_identical(tmp_path):
    model, x = tiny_swin(), tiny_images()
    sizes = shrink(model, 0.4)
    out = save_shrunk(model, sizes, tmp_path / "shrunk", {}, make_meta(SWIN, SWIN_KWARGS))
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "structure.json",
        "report.json",
        "meta.json",
    }
    reloaded = load_shrunk(out)
    assert torch.equal(reloaded(x), model(x))


def test_bad_structured_requests_raise():
    with pytest.raises(ValueError, match="qkv and proj"):
        shrink(tiny_swin(), 0.5, modules=("qkv", "mlp"))
    with pytest.raises(ValueError, match="params=1"):
        shrink(tiny_swin(), 1)
    with pytest.raises(ValueError, match="unknown scope 'model'"):
        shrink(tiny_swin(), 0.5, scope="model")
    with pytest.raises(ValueError, match="unknown structure"):
        shrink(tiny_swin(), 0.5, structure="channels")


def test_two_four_pattern_holds():
    model = tiny_swin()
    masks = nm_masks(model, "2:4")
    for name, mask in masks.items():
        groups = mask.view(mask.shape[0], -1, 4)
        assert bool((groups.sum(-1) == 2).all()), name
        weight = model.get_parameter(name).abs().view(groups.shape)
        kept_min = weight.masked_fill(~groups, float("inf")).min(-1).values
        dropped_max = weight.masked_fill(groups, -1.0).max(-1).values
        assert bool((kept_min >= dropped_max).all())  # inside a layer the score ranks like |w|
    with pytest.raises(ValueError, match="supported: 2:4"):
        nm_masks(model, "1:4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="semi-structured sparse kernels need CUDA")
def test_two_four_kernel_matches_dense():
    from vitprune.weights.nm import to_semi_structured

    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("mlp", torch.nn.Module())
    net.mlp.fc1 = torch.nn.Linear(256, 512)
    net = net.half().cuda().eval()
    masks = nm_masks(net, "2:4")
    with torch.no_grad():
        net.mlp.fc1.weight.mul_(masks["mlp.fc1.weight"].cuda())
    x = torch.rand(128, 256, device="cuda", dtype=torch.half)
    dense = net.mlp.fc1(x)
    assert to_semi_structured(net, masks) == ["mlp.fc1.weight"]
    assert torch.allclose(net.mlp.fc1(x), dense, atol=1e-2, rtol=1e-2)
