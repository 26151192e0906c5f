"""Baselines every method is read against (issue 29): ``resize`` (the dense model on a smaller input),
``random`` (random patches at EViT's blocks and counts) and ``topk`` (EViT without its fused token)."""

import copy

import pytest
import timm
import torch
from conftest import fmnist_like, make_model
from families import build, flop_macs, main_output

import vitprune
import vitprune.zoo as zoo
from vitprune.measure import macs
from vitprune.measure.formula import dense_macs
from vitprune.methods.random_tokens import image_keys, patch_scores
from vitprune.methods.resize import Resize, candidate_grids
from vitprune.methods.target import method_macs
from vitprune.tokens.families import UnsupportedModelError
from vitprune.tokens.inputs import resize_images
from vitprune.vit import describe

pytestmark = pytest.mark.usefixtures("single_thread")


def _images(batch: int, size: int, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _run(model, x):
    with torch.no_grad():
        return main_output(model(x))


@pytest.mark.parametrize("name", ["fmnist-vit-196", "deit_small_patch16_224"])
def test_resize_reaches_half_the_macs_at_the_nearest_grid(name):
    if name in zoo.names():
        dense, x = zoo.load(name), _images(1, 56, channels=1)
    else:
        torch.manual_seed(0)
        dense, x = timm.create_model(name).eval(), _images(1, 224)
    model = vitprune.apply(copy.deepcopy(dense), "resize", macs=0.5)
    spec = describe(dense)
    costs = {
        g: method_macs(Resize(g, spec.grid), spec) / dense_macs(spec) for g in candidate_grids(spec.grid)
    }
    reached = macs(model, x).ratio  # from the token counts of a real forward
    assert reached == pytest.approx(0.5, abs=0.015)  # within 3%
    assert reached == pytest.approx(costs[model.vitprune.method.size], rel=1e-12)
    assert min(abs(c - 0.5) for c in costs.values()) == pytest.approx(abs(reached - 0.5), rel=1e-12)


def test_candidate_grids_follow_the_aspect_ratio_within_one_patch():
    assert candidate_grids((3, 3)) == [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]
    wide = candidate_grids((4, 8))
    assert (2, 4) in wide and (2, 5) in wide and (4, 8) == wide[-1]
    assert all(abs(w - 2 * h) <= 1 for h, w in wide)


RESIZABLE = [
    "hf-vit",
    "hf-deit",
    "hf-dinov2-reg",
    "hf-clip",
    "hf-siglip",
    "timm-eva02",
    "timm-vit-rope-mixed",
]


@pytest.mark.parametrize("name", ["vit", "registers", "deit3_layerscale"])
def test_resize_at_full_grid_is_the_unpatched_model_bit_for_bit(name):
    dense, x = make_model(name), _images(3, 64)
    model = vitprune.apply(copy.deepcopy(dense), "resize", macs=1.0)
    assert model.vitprune.method.grid is None and not model._forward_pre_hooks
    assert torch.equal(_run(model, x), _run(dense, x))


@pytest.mark.parametrize("name", RESIZABLE)
def test_resize_at_full_grid_is_bit_identical_in_every_family(name):
    dense, x = build(name), _images(2, 32)
    model = vitprune.apply(copy.deepcopy(dense), "resize", macs=1.0)
    assert torch.equal(_run(model, x), _run(dense, x))


def _library_at(dense, name: str, size: int, x: torch.Tensor) -> torch.Tensor:
    """What the library itself does with the smaller input: timm's ``set_input_size`` (position table,
    RoPE grid) on a copy; Hugging Face's ``interpolate_pos_encoding=True``."""
    small = resize_images(x, (size, size))
    if name.startswith("hf-"):
        with torch.no_grad():
            return main_output(
                dense(small, interpolate_pos_encoding=True) if name != "hf-dinov2-reg" else dense(small)
            )
    reference = copy.deepcopy(dense)
    reference.set_input_size(img_size=(size, size))
    return _run(reference, small)


@pytest.mark.parametrize("name", ["timm-vit", *RESIZABLE])
def test_resize_is_what_the_library_does_with_a_smaller_input(name):
    if name == "timm-vit":  # registers and LayerScale: the prefix stays, the position table resamples
        torch.manual_seed(0)
        kwargs = dict(img_size=32, patch_size=8, depth=2, reg_tokens=2, init_values=0.5, num_classes=10)
        dense = timm.create_model("vit_tiny_patch16_224", **kwargs).eval()
    else:
        dense = build(name)
    x = _images(2, 32)
    model = vitprune.apply(copy.deepcopy(dense), "resize", grid=3)  # 3×3 patches of 8 px: 24 px
    torch.testing.assert_close(_run(model, x), _library_at(dense, name, 24, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["timm-eva02", "hf-vit", "hf-siglip"])
def test_resize_macs_agree_with_the_flop_counter(name):
    model, x = vitprune.apply(build(name), "resize", grid=(2, 3)), _images(2, 32)
    assert macs(model, x).mean == pytest.approx(flop_macs(model, x), rel=1e-9)
    assert macs(model, x).mean < macs(vitprune.remove(copy.deepcopy(model)), x).mean


def test_resize_is_batch_invariant_and_removable():
    dense, x = make_model("vit"), _images(4, 64)
    model = vitprune.apply(copy.deepcopy(dense), "resize", macs=0.5)
    alone = torch.cat([_run(model, x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(_run(model, x), alone, atol=1e-5, rtol=0)
    assert not torch.allclose(_run(model, x), _run(dense, x), atol=1e-3)  # it did run smaller
    vitprune.remove(model)
    assert not model._forward_pre_hooks and not model.dynamic_img_size and model.patch_embed.flatten
    assert not any(k.startswith("_vp") for m in model.modules() for k in vars(m))
    assert torch.equal(_run(model, x), _run(dense, x))


def test_resized_hugging_face_models_still_return_hidden_states():
    for name in ("hf-clip", "hf-vit"):
        with torch.no_grad():
            out = vitprune.apply(build(name), "resize", grid=3)(_images(2, 32), output_hidden_states=True)
        assert out.hidden_states is not None and out.hidden_states[-1].shape[1] == 1 + 9


def test_resize_leaves_eva_rope_untouched_when_removed():
    dense = build("timm-eva02")
    model = vitprune.apply(copy.deepcopy(dense), "resize", grid=2)
    rope = model.rope
    vitprune.remove(model)
    assert model.rope is not rope and torch.equal(_run(model, _images(2, 32)), _run(dense, _images(2, 32)))


def test_resize_refuses_beit_and_bad_options_with_the_reason():
    with pytest.raises(UnsupportedModelError, match="relative position bias"):
        vitprune.apply(build("timm-beit"), "resize", grid=2)
    model = make_model("vit")
    for options, match in [
        ({"grid": 0}, "grid=0"),
        ({"grid": (2, 9)}, r"grid=\(2, 9\)"),
        ({"grid": 2, "macs": 0.5}, "not both"),
        ({"macs": 0.001}, "out of reach"),
        ({"size": 3}, "unknown option"),
    ]:
        with pytest.raises(ValueError, match=match):
            vitprune.apply(model, "resize", **options)
    assert not hasattr(model, "vitprune")


def _kept(model, x) -> torch.Tensor:
    with torch.no_grad():
        model(x)
    return model.vitprune.state.pos


def test_random_keeps_the_same_patches_for_an_image_in_any_batch():
    x, other = _images(6, 28, channels=1), _images(6, 28, channels=1, seed=2)
    model = vitprune.apply(fmnist_like(depth=4), "random", macs=0.6, layers=[1, 2])
    kept = _kept(model, x)
    assert kept.shape[1] < 50 and len({tuple(row[1:].sort().values.tolist()) for row in kept}) == 6
    for i in range(6):
        assert torch.equal(_kept(model, x[i : i + 1])[0], kept[i])
    assert torch.equal(_kept(model, x.flip(0)), kept.flip(0))
    mixed = _kept(model, torch.cat([other[:3], x[2:4], other[3:]]))
    assert torch.equal(mixed[3:5], kept[2:4])
    reseeded = vitprune.apply(fmnist_like(depth=4), "random", macs=0.6, layers=[1, 2], seed=7)
    assert not torch.equal(_kept(reseeded, x), kept)


def test_random_scores_never_tie_and_spread_evenly():
    pixels = _images(400, 28, channels=1, seed=3)
    pos = torch.arange(1, 50).expand(400, 49)
    scores = patch_scores(image_keys(pixels, seed=0), layer=3, pos=pos, seed=0)
    assert all(len(set(row.tolist())) == 49 for row in scores)  # no ties: a position sits in the low bits
    kept = torch.zeros(400, 49).scatter(1, scores.topk(25, dim=1).indices, 1.0)
    rate = kept.mean(0)  # each position is kept about 25/49 of the time (sd 0.025 over 400 images)
    assert rate.min() > 0.38 and rate.max() < 0.64
    assert torch.equal(image_keys(pixels.to(torch.bfloat16), 0), image_keys(pixels.to(torch.bfloat16), 0))


def test_random_and_topk_count_macs_like_the_flop_counter():
    """Random scores cost no matmul: exactly the counter's figure; top-K's CLS-attention row is its own
    scoring, which the MACs convention leaves out (as for EViT): the counter sees a little more."""
    x = _images(2, 28, channels=1)
    counted = {}
    for method in ("random", "topk"):
        model = vitprune.apply(fmnist_like(depth=4), method, keep=0.5, layers=[1, 3])
        counted[method] = (macs(model, x).mean, flop_macs(model, x))
        assert macs(model, x).ratio < 0.8
    assert counted["random"][0] == pytest.approx(counted["random"][1], rel=1e-12)
    assert counted["topk"][0] == counted["random"][0] < counted["topk"][1] < 1.01 * counted["topk"][0]


@pytest.mark.parametrize("config", [{"macs": 0.6}, {"keep": [0.5, 0.7], "layers": [1, 2]}])
def test_topk_equals_evit_without_its_fused_token(config):
    x = _images(4, 64)
    topk = vitprune.apply(make_model("deit_distilled"), "topk", **config)
    evit = vitprune.apply(make_model("deit_distilled"), "evit", fuse=False, **config)
    assert topk.vitprune.method.rates == evit.vitprune.method.rates
    assert torch.equal(_run(topk, x), _run(evit, x))
    assert torch.equal(topk.vitprune.state.pos, evit.vitprune.state.pos)
    with pytest.raises(ValueError, match="topk: unknown option"):
        vitprune.apply(make_model("vit"), "topk", fuse=True)
