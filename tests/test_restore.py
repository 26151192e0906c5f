"""Dense outputs (issue 31): every token method's output back on the full patch grid, through timm's
``forward_intermediates`` / ``forward_features`` and Hugging Face's ``output_hidden_states``.

A merged token gives its value to every patch it holds, a dropped patch keeps the value it had after
the attention of the block that dropped it, padding is never read, and at zero reduction the grid is
the unpatched model's own."""

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from conftest import clear_of, fmnist_like, images, make_model, threshold_between
from families import build

import vitprune
from vitprune.tokens.inputs import resize_images

pytestmark = pytest.mark.usefixtures("single_thread")

ZERO = {m: {"macs": 1.0} for m in ("evit", "ppt", "random", "resize", "sait", "tome", "topk")}
ZERO["star"] = {"alpha": 1.0, "rates": [1.0] * 4}  # every model here has 4 blocks


def _timm(name: str) -> torch.nn.Module:
    return make_model("registers") if name == "timm-vit" else build(name)


def _taps(model, x, **options):
    """``forward_intermediates`` at every block: final features and one list per block."""
    final, ys = model.forward_intermediates(x, norm=True, return_prefix_tokens=True, **options)
    return [final, *(t for y in ys for t in y)]


@pytest.mark.parametrize("name", ["timm-vit", "timm-eva02", "timm-beit"])
def test_zero_reduction_gives_the_unpatched_grid(name):
    model = _timm(name)
    x = images(2, size=model.patch_embed.img_size[0])
    with torch.no_grad():
        expected, features = _taps(model, x), model.forward_features(x)
        for method, config in ZERO.items():
            patched = vitprune.apply(copy.deepcopy(model), method, dense=True, **config)
            for got, want in zip(_taps(patched, x), expected, strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=method)
            torch.testing.assert_close(patched.forward_features(x), features, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["hf-vit", "hf-dinov2-reg"])
def test_zero_reduction_gives_the_unpatched_hidden_states(name):
    model, x = build(name), torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x, output_hidden_states=True)
        for method in ("tome", "evit", "topk", "ppt", "sait"):
            out = vitprune.apply(copy.deepcopy(model), method, dense=True, **ZERO[method])(
                x, output_hidden_states=True
            )
            for got, want in zip(out.hidden_states, expected.hidden_states, strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=method)
            if hasattr(out, "last_hidden_state"):
                torch.testing.assert_close(
                    out.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0
                )


def _holders(state) -> list[tuple[int, int, int]]:
    """(image, token, original index) for every original token a real, non-fused token holds."""
    real = state.pos >= 0
    if state.valid is not None:
        real = real & state.valid
    return [tuple(i) for i in (state.source & real[..., None]).nonzero().tolist()]


def test_a_merged_token_gives_its_value_to_every_patch_it_holds():
    model, x = make_model("registers"), images(2)
    with torch.no_grad():
        tokens = vitprune.apply(model, "tome", r=3, trace_source=True).forward_features(x)
        state = model.vitprune.state
        grid = vitprune.apply(model, "tome", r=3, dense=True).forward_features(x)
    assert grid.shape[1] == state.source.shape[-1] > tokens.shape[1]
    assert int(state.source.sum(-1).max()) > 2, "some token must hold several patches"
    held = _holders(state)
    assert len(held) == grid.shape[0] * grid.shape[1]  # every original token held exactly once
    for b, n, j in held:
        torch.testing.assert_close(grid[b, j], tokens[b, n], atol=1e-6, rtol=0)


def test_a_dropped_patch_keeps_its_value_from_the_block_that_dropped_it():
    """EViT at block 1: the patches fused away hold, in every later block and the final features, the
    unpatched model's tokens after block 1's attention residual; the fused token gives its value to none."""
    model, x = make_model("registers"), images(2)
    p, plain = model.num_prefix_tokens, copy.deepcopy(model)
    with torch.no_grad():
        patches, prefix = plain.forward_intermediates(
            x, indices=[0], output_fmt="NLC", return_prefix_tokens=True, intermediates_only=True
        )[0]
        h, blk = torch.cat([prefix, patches], 1), plain.blocks[1]
        mid = h + blk.ls1(blk.attn(blk.norm1(h)))  # block 1 after its attention residual, unpatched
        tokens = vitprune.apply(model, "evit", keep=0.5, layers=[1], trace_source=True).forward_features(x)
        state = model.vitprune.state
        vitprune.apply(model, "evit", keep=0.5, layers=[1], dense=True)
        final, ys = model.forward_intermediates(x, output_fmt="NLC", return_prefix_tokens=True)
    assert bool((state.pos == -1).any()), "EViT must have fused the dropped patches"
    torch.testing.assert_close(ys[0][0], patches, atol=1e-6, rtol=0)  # before any reduction
    held = torch.zeros(state.source.shape[0], state.source.shape[-1], dtype=torch.bool)
    for b, n, j in _holders(state):
        held[b, j] = True
        torch.testing.assert_close(final[b, j], tokens[b, n], atol=1e-6, rtol=0)
    dropped = (~held).nonzero().tolist()
    assert len(dropped) == 2 * 8  # 16 patches, 8 kept per image
    for b, j in dropped:
        torch.testing.assert_close(final[b, j], model.norm(mid[b, j]), atol=1e-5, rtol=0)
        for later in ys[1:]:
            torch.testing.assert_close(later[0][b, j - p], mid[b, j], atol=1e-5, rtol=0)


def _varied(model: torch.nn.Module) -> torch.nn.Module:
    """Sharper attention that follows the image more than the position embedding, so images keep
    clearly different numbers of tokens (as in test_deploy)."""
    with torch.no_grad():
        model.pos_embed.mul_(0.1)
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4)
    return model


def _contrasting(seed: int, batch: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 28, 28, generator=g) * torch.rand(batch, 1, 1, 1, generator=g) * 5


ADAPTIVE = {
    "star": {"alpha": 1.0, "rates": [0.6, 0.7, 0.8], "adaptive": True},
    "sait": {"mode": "mass", "mass": 0.6},
}


@pytest.mark.parametrize("method", sorted(ADAPTIVE))
def test_padding_is_never_read(method):
    """Padding rows set to 1e4 after every reduction leave the restored grids as they were."""
    model, x = (
        vitprune.apply(_varied(fmnist_like(depth=3)), method, dense=True, **ADAPTIVE[method]),
        _contrasting(0),
    )
    with torch.no_grad():
        clean = _taps(model, x, output_fmt="NLC")
        assert model.vitprune.state.valid is not None and not bool(model.vitprune.state.valid.all())
        reduce = model.vitprune.method.reduce

        def poisoned(layer, x, state, attn):
            x, state = reduce(layer, x, state, attn)
            return (x if state.valid is None else x.masked_fill(~state.valid[..., None], 1e4)), state

        model.vitprune.method.reduce = poisoned
        dirty = _taps(model, x, output_fmt="NLC")
    for got, want in zip(dirty, clean, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def _adaptive(method: str) -> torch.nn.Module:
    if method != "ppt":
        return vitprune.apply(_varied(fmnist_like(depth=3)), method, dense=True, **ADAPTIVE[method])
    model = vitprune.apply(fmnist_like(depth=3), "ppt", r=8, layers=[1], threshold=1e9)
    with torch.no_grad():
        model(_contrasting(0))
    variances = model.vitprune.method.variances
    threshold = threshold_between(variances[1])  # the batch mixes pooling and pruning
    assert clear_of(threshold, variances), "an image sits within float error of the threshold"
    return vitprune.apply(model, "ppt", r=8, layers=[1], threshold=threshold, dense=True)


@pytest.mark.parametrize("method", ["ppt", "sait", "star"])
def test_restored_grids_do_not_depend_on_batch_companions(method):
    model, x = _adaptive(method), _contrasting(0)
    with torch.no_grad():
        together = _taps(model, x)
        if method == "ppt":
            pooled = model.vitprune.method.branches[1]
            assert pooled.any() and not pooled.all(), "the batch must mix pooling and pruning"
        else:
            counts = model.vitprune.state.counts()
            assert counts.min() < counts.max(), "images must keep different numbers of tokens"
        alone = [_taps(model, image) for image in x.split(1)]
    for i, taps in enumerate(alone):
        for got, want in zip(taps, together, strict=True):
            torch.testing.assert_close(got, want[i : i + 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["avgpool_no_cls", "timm-siglip-map", "hf-siglip"])
def test_pooling_the_merged_grid_is_pooling_by_token_size(name):
    """With merging only, every patch once on the restored grid weighs a token by its size: the pooled
    output (average or attention pool) is the one size-weighted pooling gives on the tokens left."""
    model = build(name) if "-" in name else make_model(name)
    size = 32 if "-" in name else 64
    x = images(2, size=size)
    with torch.no_grad():
        kept = vitprune.apply(model, "tome", r=3)(x)
        full = vitprune.apply(model, "tome", r=3, dense=True)(x)
    if not isinstance(kept, torch.Tensor):
        assert full.last_hidden_state.shape[1] == x.shape[-1] ** 2 // 64
        kept, full = kept.pooler_output, full.pooler_output
    torch.testing.assert_close(full, kept, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["hf-vit", "hf-dinov2-reg", "hf-clip"])
@pytest.mark.parametrize(
    "method, config", [("tome", {"r": 2}), ("evit", {"keep": 0.5}), ("resize", {"grid": 3})]
)
def test_hf_hidden_states_are_full_grids_and_class_token_heads_unchanged(name, method, config):
    model, x = build(name), torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense = model(x, output_hidden_states=True).hidden_states
        kept = vitprune.apply(copy.deepcopy(model), method, **config)(x)
        vitprune.apply(model, method, dense=True, **config)
        out = model(x, output_hidden_states=True)
        as_tuple = model(x, output_hidden_states=True, return_dict=False)
        default = model(x)
    assert [h.shape for h in out.hidden_states] == [h.shape for h in dense]
    assert default.hidden_states is None  # hidden states only when asked, as without vitprune
    if method != "resize":
        torch.testing.assert_close(out.hidden_states[0], dense[0])
    main = "logits" if hasattr(out, "logits") else "pooler_output"
    torch.testing.assert_close(getattr(out, main), getattr(kept, main), atol=1e-5, rtol=0)  # the class token
    torch.testing.assert_close(as_tuple[-1][-1], out.hidden_states[-1])


def test_resize_features_are_interpolated_back_to_the_models_grid():
    model, x = make_model("vit"), images(2)
    reference = timm.create_model(
        "vit_tiny_patch16_224", img_size=64, depth=4, num_classes=10, dynamic_img_size=True
    )
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        small = reference.eval().forward_intermediates(resize_images(x, (32, 32)), intermediates_only=True)
        got = vitprune.apply(model, "resize", grid=2).forward_intermediates(x, intermediates_only=True)
    for y, s in zip(got, small, strict=True):
        assert y.shape == (2, 192, 4, 4) and s.shape == (2, 192, 2, 2)
        torch.testing.assert_close(y, F.interpolate(s, size=(4, 4), mode="bilinear"), atol=1e-5, rtol=0)


def test_forward_intermediates_keeps_timms_options():
    model, x = make_model("registers"), images(2)
    with torch.no_grad():
        expected = model.forward_intermediates(
            x, indices=2, stop_early=True, output_dict=True, return_prefix_tokens=True
        )
        vitprune.apply(model, "tome", r=3)
        got = model.forward_intermediates(
            x, indices=2, stop_early=True, output_dict=True, return_prefix_tokens=True
        )
        only = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True, output_fmt="NLC")
    assert got.keys() == expected.keys()
    for key in got:
        shapes = [t.shape for t in got[key]] if isinstance(got[key], list) else got[key].shape
        assert shapes == (
            [t.shape for t in expected[key]] if isinstance(got[key], list) else expected[key].shape
        )
    assert [y.shape for y in only] == [(2, 16, 192)] * 2


def test_a_failed_call_leaves_later_forwards_as_they_were():
    model, x = vitprune.apply(make_model("vit"), "evit", keep=0.5, layers=[1]), images(2)
    with torch.no_grad():
        expected = model(x)
        with pytest.raises(RuntimeError):
            model.forward_intermediates(x[:, :2])  # two channels for three: the patch embedding refuses
        torch.testing.assert_close(model(x), expected, atol=0, rtol=0)
    assert not model.vitprune.dense.on


FIXED = {"tome": {"r": 6}, "evit": {"keep": 0.5, "layers": [1]}, "topk": {"keep": 0.5, "layers": [1]}}


class Taps(torch.nn.Module):
    """A module whose forward is the model's ``forward_intermediates``, for compiling and exporting."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        final, ys = self.model.forward_intermediates(x, indices=[0, 1], norm=True)
        return final, *ys


def _fixed(method: str) -> Taps:
    return Taps(vitprune.apply(fmnist_like(depth=2), method, **FIXED[method])).eval()


@pytest.mark.inductor
@pytest.mark.parametrize("method", ["evit", "tome"])  # topk's graph is EViT's without the fused token
def test_compiled_forward_intermediates_match_eager(method):
    torch._dynamo.reset()
    taps, x = _fixed(method), _contrasting(1)
    compiled = torch.compile(taps, fullgraph=True)
    with torch.no_grad():
        for got, want in zip(compiled(x), taps(x), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch._dynamo.reset()


# every fixed schedule through torch.export; ONNX (slower to build) for the one whose fused token and
# carried values make the most different graph
EXPORTS = [*((method, "pt2") for method in sorted(FIXED)), ("evit", "onnx")]


@pytest.mark.parametrize("method, fmt", EXPORTS)
def test_exported_forward_intermediates_match_eager(method, fmt, tmp_path):
    from vitprune.deploy.export import export_model

    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
    taps, x = _fixed(method), _contrasting(1)
    path = export_model(taps, _contrasting(0, batch=2), tmp_path / f"taps.{fmt}", fmt)
    with torch.no_grad():
        want = taps(x)
        if fmt == "pt2":
            got = torch.export.load(path).module()(x)
        else:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = [torch.from_numpy(y) for y in session.run(None, {session.get_inputs()[0].name: x.numpy()})]
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=0)
