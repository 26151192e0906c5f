"""Deployment: every fixed-schedule method compiles as one graph, exports with torch.export and to ONNX,
and adaptive methods compile without recompiling for every new token count."""

import pytest
import torch
from conftest import clear_of, fmnist_like, threshold_between
from torch._inductor.compile_fx import compile_fx

import vitprune
from vitprune.deploy.export import export_model, run_exported
from vitprune.tokens.select import BUCKETS, bucket_length

DEPTH = 3
FIXED = {
    "tome": {"r": 6},
    "evit": {"keep": 0.5, "layers": [1]},
    "ppt": {"r": 8, "layers": [1]},  # the threshold is chosen per test so the batch mixes both branches
    "star": {"alpha": 1.0, "rates": [0.9, 0.7, 0.8]},
    "sait": {"keep": 0.5, "layer": 1},
    "resize": {"macs": 0.5},  # the input resized inside the model's own forward
    "random": {"keep": 0.5, "layers": [1]},  # per-image keys hashed from the pixels, int64 scores
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _images(seed: int, batch: int = 4) -> torch.Tensor:
    return torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _model(method: str) -> torch.nn.Module:
    model = fmnist_like(depth=DEPTH)
    config = dict(FIXED[method])
    if method == "ppt":  # a threshold between the images' score variances splits the batch in two
        vitprune.apply(model, "ppt", **config, threshold=1e9)
        variances = {}
        with torch.no_grad():
            for seed in (0, 1):
                model(_images(seed))
                variances[seed] = model.vitprune.method.variances[1]
        config["threshold"] = threshold_between(variances[0])
        assert clear_of(config["threshold"], variances), "an image sits within float error of the threshold"
    return vitprune.apply(model, method, **config)


def _counting_inductor(graphs: list):
    def backend(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    return backend


@pytest.mark.inductor
@pytest.mark.parametrize("method", sorted(FIXED))
def test_fixed_schedules_compile_whole_and_once(method):
    model, graphs = _model(method), []
    compiled = torch.compile(model, fullgraph=True, backend=_counting_inductor(graphs))
    for seed in (0, 1):  # same shape, new data: no second graph
        x = _images(seed)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=0)
    assert len(graphs) == 1
    if method == "ppt":
        pooled = model.vitprune.method.branches[1]
        assert pooled.any() and not pooled.all(), "the batch must mix pooling and pruning"


@pytest.mark.inductor
def test_cpp_wrapper_compiles_the_same_outputs():
    """Inductor's C++ wrapper (``bench --compile --cpp-wrapper``, deploy.py's compiled-cpp mode)."""
    model = _model("tome")
    compiled = torch.compile(model, fullgraph=True, options={"cpp_wrapper": True})
    x = _images(0)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize("method", sorted(FIXED))
def test_exported_files_agree_with_the_model(method, fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    model = _model(method)
    path = export_model(model, _images(0, batch=2), tmp_path / f"model.{fmt}", fmt)
    x = _images(0)  # another batch size than the one traced
    with torch.no_grad():
        torch.testing.assert_close(run_exported(path, x), model(x), atol=1e-4, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("method", ["star", "sait"])
def test_per_image_counts_refuse_export_with_the_reason(method, tmp_path):
    model = fmnist_like(depth=DEPTH)
    config = {"star": {"alpha": 1.0, "rates": [0.9] * DEPTH, "adaptive": True}, "sait": {"mode": "mass"}}
    vitprune.apply(model, method, **config[method])
    with pytest.raises(ValueError, match="different number of tokens per image"):
        export_model(model, _images(0), tmp_path / "model.pt2", "pt2")
    assert not any(tmp_path.iterdir())


def _varied(model: torch.nn.Module) -> torch.nn.Module:
    """Sharper attention that follows the image more than the position embedding, so images keep
    clearly different numbers of tokens."""
    with torch.no_grad():
        model.pos_embed.mul_(0.1)
        for blk in model.blocks:
            blk.attn.qkv.weight.mul_(4)
    return model


def _contrasting_images(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 1, 28, 28, generator=g) * torch.rand(4, 1, 1, 1, generator=g) * 5


@pytest.mark.inductor
@pytest.mark.parametrize(
    "method, config",
    [
        ("star", {"alpha": 1.0, "rates": [0.6, 0.7, 0.8], "adaptive": True}),
        ("sait", {"mode": "mass", "mass": 0.6}),
    ],
)
def test_adaptive_counts_compile_without_recompiling_for_new_counts(method, config):
    model, graphs = vitprune.apply(_varied(fmnist_like(depth=DEPTH)), method, **config), []
    compiled = torch.compile(model, backend=_counting_inductor(graphs))
    seen, compiled_after = set(), []
    for seed in range(6):
        x = _contrasting_images(seed)
        with torch.no_grad(), model.vitprune.recording() as counts:
            expected = model(x)
        seen.add(tuple(tuple(c.mlp.tolist()) for c in counts))
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), expected, atol=1e-5, rtol=0)
        compiled_after.append(len(graphs))
    assert len(seen) >= 5, "the batches must keep different token counts"
    # each graph piece compiles at most twice (its first length, then once for any length), not per count
    assert compiled_after[-1] <= 2 * compiled_after[0]
    assert compiled_after[-3] == compiled_after[-1]  # three batches with new counts, nothing compiled


@pytest.mark.parametrize("n", [5, 8, 49, 196, 197])
def test_bucket_lengths_hold_every_count_in_at_most_eight_shapes(n):
    lengths = [bucket_length(k, n) for k in range(1, n + 1)]
    assert all(k <= length <= n for k, length in zip(range(1, n + 1), lengths, strict=True))
    assert len(set(lengths)) <= BUCKETS and lengths[-1] == n
