"""Throughput / latency measurement returns sane, complete records."""

import pytest
import timm
import torch

from vitprune.measure.bench import bench, compare, latency, throughput

FIELDS = {
    "batch_size", "precision", "images_per_s", "latency_ms_median", "latency_ms_p90",
    "runs", "warmup", "threads", "device", "input_size",
}


@pytest.fixture(scope="module")
def model():
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10)


def test_bench_records(model):
    records = bench(model, batch_sizes=(1, 4), precisions=("fp32", "bf16"), runs=2, warmup=1)
    assert [(r["batch_size"], r["precision"]) for r in records] == [
        (1, "fp32"), (1, "bf16"), (4, "fp32"), (4, "bf16"),
    ]
    for r in records:
        assert set(r) == FIELDS
        assert r["images_per_s"] > 0 and r["latency_ms_median"] > 0
        assert r["latency_ms_p90"] >= r["latency_ms_median"]
        assert r["input_size"] == [3, 32, 32]
        assert r["threads"] == torch.get_num_threads() and r["device"] == "cpu"


def test_throughput_and_latency_positive(model):
    assert throughput(model, batch_size=2, runs=2, warmup=0) > 0
    lat = latency(model, runs=3, warmup=1)
    assert 0 < lat["median_ms"] <= lat["p90_ms"]


def test_explicit_input_size_is_used(model):
    seen = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    try:
        throughput(model, batch_size=2, input_size=(3, 32, 32), runs=1, warmup=0)
    finally:
        handle.remove()
    assert seen == [(2, 3, 32, 32)]


def test_compare_interleaves_and_reports_every_model(model):
    order = []
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    models = {"vit": model, "linear": small}
    handles = [m.register_forward_hook(lambda *_a, n=n: order.append(n)) for n, m in models.items()]
    try:
        result = compare(models, batch_size=2, input_size=(3, 32, 32), rounds=2, runs=1, warmup=0)
    finally:
        for h in handles:
            h.remove()
    assert set(result) == {"vit", "linear"} and all(v > 0 for v in result.values())
    # warm-up/one pass each, then round 1 starts with "vit", round 2 rotates to "linear".
    assert order == ["vit", "linear", "vit", "linear", "linear", "vit"]


def test_unknown_precision_rejected(model):
    with pytest.raises(ValueError, match="fp16"):
        throughput(model, batch_size=1, runs=1, warmup=0, precision="fp16")
