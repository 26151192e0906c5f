"""DIMAP (He et al., ICLR 2024) scores, modules and masks on a tiny random Swin and ViT."""

import pytest
import timm
import torch

from vitprune.weights import apply_masks, dimap_masks, gather, weight_scores
from vitprune.weights.counting import nonzero_macs, nonzero_params
from vitprune.weights.modules import layers
from vitprune.weights.report import build_report
from vitprune.weights.scores import one_thread

SWIN = "swin_tiny_patch4_window7_224"
# the project's reference Swin (fmnist-swin), with random weights
SWIN_KWARGS = dict(
    img_size=28, patch_size=2, window_size=7, embed_dim=48, depths=(2, 2, 2), num_heads=(2, 4, 8),
    in_chans=1, num_classes=10,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: thread start-up would dominate, and a training job shares this machine."""
    with one_thread():
        yield


def tiny_swin(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(SWIN, **SWIN_KWARGS).eval()
    with torch.no_grad():  # trained-looking spread: layers of different scales
        for i, layer in enumerate(layers(model)):
            layer.linear.weight.mul_(1 + i % 5)
    return model


def tiny_images(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_scores_in_unit_interval_max_one_and_rank_like_magnitude():
    weight = torch.randn(64, 48)
    scores = weight_scores(weight)
    assert scores.shape == weight.shape
    assert bool((scores > 0).all()) and bool((scores <= 1).all())
    assert scores.flatten()[weight.abs().argmax()] == 1.0
    by_score = torch.sort(scores.flatten(), descending=True, stable=True).indices
    by_magnitude = torch.sort(weight.abs().flatten(), descending=True, stable=True).indices
    assert torch.equal(by_score, by_magnitude)


def test_scores_match_definition_and_ties_are_deterministic():
    weight = torch.tensor([[0.5, -2.0], [0.5, 1.0]])
    squares = torch.tensor([4.0, 1.0, 0.25, 0.25])  # sorted; the two 0.5s keep index order
    expected = squares / torch.cumsum(squares, 0)
    scores = weight_scores(weight).flatten()
    assert torch.allclose(scores[[1, 3, 0, 2]], expected)
    assert scores[0] > scores[2]  # equal |w|: the earlier index ranks first


def test_modules_gather_roles_across_all_stages():
    model = tiny_swin()
    found = gather(model)
    assert set(found) == {"qkv", "proj", "mlp"}
    assert len(found["qkv"]) == len(found["proj"]) == 6 and len(found["mlp"]) == 12
    names = {layer.name for group in found.values() for layer in group}
    assert "layers.2.blocks.1.mlp.fc2" in names
    assert not any(k in n for n in names for k in ("downsample", "patch_embed", "head", "norm"))
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2)
    assert [layer.name for layer in gather(vit, ("proj",))["proj"]] == [
        "blocks.0.attn.proj",
        "blocks.1.attn.proj",
    ]


@pytest.mark.parametrize("target", [0.2, 0.5, 0.77])
def test_module_threshold_hits_target_exactly(target):
    model = tiny_swin()
    masks = dimap_masks(model, params=target)
    for group in gather(model).values():
        size = sum(layer.linear.weight.numel() for layer in group)
        removed = sum(int((~masks[layer.param]).sum()) for layer in group)
        assert abs(removed - round(target * size)) <= 1
    # module-aware: the per-layer ratios differ, and each layer's largest weight survives
    ratios = {float((~m).float().mean()) for m in masks.values()}
    assert len(ratios) > 3
    for layer in layers(model):
        assert masks[layer.param].flatten()[layer.linear.weight.abs().argmax()]


def test_pruned_weights_are_the_smallest_of_their_layer():
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5)
    for layer in layers(model):
        w, keep = layer.linear.weight.abs(), masks[layer.param]
        if (~keep).any():
            assert w[~keep].max() <= w[keep].min()


def test_layer_scope_is_uniform_and_model_scope_pools_everything():
    model = tiny_swin()
    uniform = dimap_masks(model, params=0.4, scope="layer")
    for layer in layers(model):
        assert abs(int((~uniform[layer.param]).sum()) - round(0.4 * layer.linear.weight.numel())) <= 1
    pooled = dimap_masks(model, params=0.4, scope="model")
    total = sum(m.numel() for m in pooled.values())
    assert abs(sum(int((~m).sum()) for m in pooled.values()) - round(0.4 * total)) <= 1


def test_masks_respect_module_selection():
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5, modules=("mlp",))
    assert masks and all(".mlp.fc" in name for name in masks)


@pytest.mark.parametrize("kept", [0.7, "G"])
def test_macs_target_is_what_the_model_keeps(kept):
    """``macs=`` means what it means for every token method: the MACs the pruned model keeps, as a
    fraction of dense or as GMACs; before, 0.7 removed 70% of the prunable layers' MACs."""
    model, images = tiny_swin(), tiny_images(1)
    dense = nonzero_macs(model, images)
    target = 0.7 if kept == 0.7 else f"{0.7 * dense / 1e9:.6f}G"
    apply_masks(model, dimap_masks(model, macs=target))
    assert nonzero_macs(model, images) / dense == pytest.approx(0.7, abs=2e-3)


def test_macs_target_out_of_reach_names_the_range():
    with pytest.raises(ValueError, match=r"macs=0.01 .* out of reach for dimap .* of dense"):
        dimap_masks(tiny_swin(), macs=0.01)


def test_apply_masks_zeros_and_counts_are_nonzero_aware():
    model, images = tiny_swin(), tiny_images()
    dense_params, dense_macs = nonzero_params(model), nonzero_macs(model, images)
    masks = dimap_masks(model, params=0.5)
    apply_masks(model, masks)
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert nonzero_params(model) == dense_params - zeros
    assert nonzero_macs(model, images) < dense_macs
    report = build_report(model, images)
    row = next(r for r in report["layers"] if r["name"] == "layers.0.blocks.0.attn.qkv")
    qkv = model.layers[0].blocks[0].attn.qkv.weight
    assert row["tokens"] == 14 * 14  # 28 px / patch 2, every token once per block
    assert row["theoretical_macs"] == 14 * 14 * int(torch.count_nonzero(qkv))
    assert report["prunable"]["sparsity"] == pytest.approx(0.5, abs=1e-5)
    assert report["model"]["params_removed_fraction"] < 0.5
    assert report["modules"]["qkv"]["sparsity"] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"params": 0.0}, "params=0.0"),
        ({"params": 1.0}, "params=1.0"),
        ({"macs": -0.1}, "macs=-0.1"),
        ({}, "exactly one target"),
        ({"params": 0.5, "modules": ("qkv", "ffn")}, "allowed: qkv, proj, mlp"),
        ({"params": 0.5, "scope": "block"}, "allowed: module, model, layer"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        dimap_masks(tiny_swin(), **kwargs)


def test_model_without_prunable_layers_raises():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="no prunable layers"):
        dimap_masks(net, params=0.5)
