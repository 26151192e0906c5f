"""Token maps: dropped patches are -1 (never group 0), merged patches share a group, any batch size."""

import argparse

import numpy as np
import pytest
import torch
from conftest import fmnist_like
from families import build

import vitprune
from vitprune.data.fashion_mnist import has_split, resolve_root
from vitprune.tokens.state import TokenState, keep_count
from vitprune.viz import DROPPED, patch_groups, record_token_maps, save_token_maps
from vitprune.viz.render import LIFT, boundaries, cell_image, row_label, to_display

PATCHES = 49  # 28×28 images in 4×4 patches


def tiny(seed: int = 0) -> torch.nn.Module:
    return fmnist_like(seed)


def inputs(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_groups_from_a_handmade_state():
    # CLS, a token holding patches 0 and 2, one holding patch 3, and padding that still "holds" 1.
    source = torch.zeros(1, 4, 5, dtype=torch.bool)
    source[0, 0, 0] = True
    source[0, 1, [1, 3]] = True
    source[0, 2, 4] = True
    source[0, 3, 2] = True
    state = TokenState(
        1, torch.tensor([[0, 1, 4, 2]]), source=source, valid=torch.tensor([[1, 1, 1, 0]]).bool()
    )
    assert patch_groups(state).tolist() == [[1, DROPPED, 1, 2]]


def test_dropped_patches_drawn_black_merged_ones_in_their_mean_colour():
    # a 4×4 image in 2×2 patches of grey levels 0, 0.2, 0.6, 1.0 (lifted so only dropped is black)
    levels = np.array([[0.0, 0.2], [0.6, 1.0]], dtype=np.float32).repeat(2, 0).repeat(2, 1)
    image = to_display(levels[None, None])[0]
    drawn = cell_image(image, np.array([0, DROPPED, 2, 2]), (2, 2))
    assert (drawn[:2, 2:] == 0).all()  # the dropped patch (top right) is black
    assert (drawn[:2, :2] == image[:2, :2]).all() and image[0, 0, 0] == pytest.approx(LIFT)  # kept as is
    assert np.allclose(drawn[2:], (image[2, 0] + image[2, 2]) / 2)  # merged: one mean colour
    # outlines between different tokens, none between two dropped patches
    assert len(boundaries(np.array([DROPPED, DROPPED, 0, 1]), (2, 2), (2, 2))) == 3


def test_pruned_patches_are_dropped_not_group_zero():
    model = vitprune.apply(tiny(), "evit", keep=0.5, layers=(1,), fuse=False, trace_source=True)
    x = inputs(3)
    maps = record_token_maps(model, x)
    assert [m.layer for m in maps.layers] == [-1, 1]
    groups = maps.layers[-1].groups
    kept = keep_count(0.5, PATCHES)
    assert ((groups == DROPPED).sum(1) == PATCHES - kept).all()
    for row, pos in zip(groups, model.vitprune.state.pos, strict=True):
        kept_patches = set((pos[1:] - 1).tolist())
        assert {i for i, g in enumerate(row.tolist()) if g != DROPPED} == kept_patches
        assert len(set(row[row != DROPPED].tolist())) == kept  # every kept patch is its own token
    assert not maps.layers[-1].fused.any()


def test_merged_patches_share_a_group():
    model = vitprune.apply(tiny(), "tome", r=8, trace_source=True)
    maps = record_token_maps(model, inputs(2))
    assert [m.layer for m in maps.layers] == [-1, 0, 1, 2, 3]
    groups = maps.layers[-1].groups
    assert (groups != DROPPED).all()
    source = model.vitprune.state.source[:, :, 1:]
    for b in range(2):
        assert len(set(groups[b].tolist())) == PATCHES - 4 * 8
        for token in groups[b].unique():
            members = groups[b] == token
            assert members.equal(source[b, token])  # the group is exactly what that token holds
        assert max(groups[b].bincount()) > 1


def test_fused_token_is_marked_not_dropped():
    model = vitprune.apply(tiny(), "evit", keep=0.5, layers=(1,), trace_source=True)
    last = record_token_maps(model, inputs(2)).layers[-1]
    assert (last.groups != DROPPED).all()
    assert (last.fused.sum(1) == PATCHES - keep_count(0.5, PATCHES)).all()


def test_adaptive_batch_and_png(tmp_path):
    model = vitprune.apply(tiny(), "sait", mode="value", tau=1.0, layer=1, trace_source=True)
    x = inputs(5)
    path, maps = save_token_maps(model, x, tmp_path / "maps.png", [f"img {i}" for i in range(5)])
    assert path.stat().st_size > 10_000
    assert maps.adaptive
    last = maps.layers[-1]
    assert last.counts.unique().numel() > 1  # images keep different numbers of patches
    assert ((last.groups != DROPPED).sum(1) == last.counts).all()  # padding is never shown as kept
    assert row_label(maps, 0, "img 0").endswith(f"kept {int(last.counts[0])}/{PATCHES}")


def test_ppt_rows_name_their_branch(tmp_path):
    model = vitprune.apply(tiny(), "ppt", r=6, layers=(1, 2), threshold=1e9, trace_source=True)
    path, maps = save_token_maps(model, inputs(4), tmp_path / "ppt.png")
    assert sorted(maps.branches) == [1, 2]
    assert row_label(maps, 3, "x") == "x\nb1:M b2:M"
    assert path.stat().st_size > 0


@pytest.mark.parametrize("family", ["hf-vit", "hf-dinov2-reg", "hf-clip", "timm-eva02", "timm-beit"])
def test_token_maps_of_other_families(tmp_path, family):
    """Blocks and patch grid come from the family adapter: 32×32 images in 8×8 patches, 4 blocks."""
    model = vitprune.apply(build(family), "tome", r=2, trace_source=True)
    path, maps = save_token_maps(model, torch.rand(2, 3, 32, 32), tmp_path / "maps.png")
    assert maps.grid == (4, 4) and [m.layer for m in maps.layers] == [-1, 0, 1, 2, 3]
    for layer in maps.layers:
        assert (layer.groups != DROPPED).all()  # merging never drops a patch
        assert all(g.unique().numel() == int(c) for g, c in zip(layer.groups, layer.counts, strict=True))
    assert maps.layers[-1].counts.tolist() == [16 - 4 * 2] * 2
    assert path.stat().st_size > 0


def test_needs_trace_source():
    model = vitprune.apply(tiny(), "tome", r=2)
    with pytest.raises(ValueError, match="trace_source"):
        record_token_maps(model, inputs(1))


@pytest.mark.skipif(not has_split(resolve_root(), "test"), reason="Fashion-MNIST not installed")
def test_visualize_command(tmp_path):
    from vitprune.viz.cli import add_visualize_arguments

    parser = argparse.ArgumentParser()
    add_visualize_arguments(parser)
    kwargs = "img_size=28 patch_size=4 depth=2 embed_dim=48 num_heads=3 in_chans=1".split()
    argv = ["--model", "vit_tiny_patch16_224", "--num-classes", "10", "--method", "tome", "-p", "r=5"]
    argv += [a for kw in kwargs for a in ("--model-kwargs", kw)]
    args = parser.parse_args(argv + ["--images", "3", "--out", str(tmp_path / "t.png")])
    result = args.run(args)
    assert result["images"] == 3 and result["tokens_kept"] == [39, 39, 39]
    assert (tmp_path / "t.png").stat().st_size > 0
