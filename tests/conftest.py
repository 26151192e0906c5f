"""Small random-weight timm models covering every supported ViT family."""

import os

import pytest
import timm
import torch
from cpu_limits import BF16_ATTENTION, NO_INDUCTOR
from hypothesis import HealthCheck, settings
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

from vitprune.weights.scores import one_thread

# `make test` runs a fixed, fast sample of every property test; VITPRUNE_FUZZ=1 runs 1,000 fresh cases each.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=_QUIET
)
settings.register_profile("fuzz", max_examples=1000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile("fuzz" if os.environ.get("VITPRUNE_FUZZ") == "1" else "ci")

# Inductor's FX-graph cache key leaves out the vector ISA it generated for (torch 2.14.1), yet the C++ it
# caches hard-codes that vector width. On an AVX-512 machine, a graph cached by a run on the native kernels
# and served to an ATEN_CPU_CAPABILITY=avx2 run is rebuilt with AVX2's 8-float vectors and loads 16 floats
# into them: a segmentation fault (CI, stop 35). The same happens across hosts that share /tmp but not a
# vector width. One cache per capability in use (AVX512, AVX2, DEFAULT) keeps them apart; Inductor reads
# the variable whenever it opens its cache, so setting it here, before any test compiles, is in time.
_CAPABILITY = torch.backends.cpu.get_cpu_capability().lower()
if os.environ.get("TORCHINDUCTOR_CACHE_DIR", default_cache_dir()) == default_cache_dir():
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default_cache_dir()}_{_CAPABILITY}"


def pytest_collection_modifyitems(items):
    no_inductor = "ATEN_CPU_CAPABILITY=default: Inductor's C++ does not build ('at::vec' undeclared)"
    no_bf16 = "forced AVX2/baseline kernels on an AMX CPU: bf16 attention raises (tests/cpu_limits.py)"
    for item in items:
        if NO_INDUCTOR and item.get_closest_marker("inductor"):
            item.add_marker(pytest.mark.skip(reason=no_inductor))
        if not BF16_ATTENTION and item.get_closest_marker("bf16_attention"):
            item.add_marker(pytest.mark.skip(reason=no_bf16))


# name → timm kwargs; tiny sizes keep the suite fast while exercising each family's special parts.
FAMILIES = {
    "vit": ("vit_tiny_patch16_224", {}),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", {}),
    "deit3_layerscale": ("deit3_small_patch16_224", {"embed_dim": 96, "num_heads": 3}),
    "registers": ("vit_tiny_patch16_224", {"reg_tokens": 4}),
    "qk_norm": ("vit_tiny_patch16_224", {"qk_norm": True}),
    "avgpool_no_cls": ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg", "reg_tokens": 2}),
}


def make_model(family: str, depth: int = 4, img_size: int = 64, seed: int = 0) -> torch.nn.Module:
    name, kwargs = FAMILIES[family]
    torch.manual_seed(seed)
    model = timm.create_model(name, img_size=img_size, depth=depth, num_classes=10, **kwargs).eval()
    return randomize_scales(model)


def randomize_scales(model: torch.nn.Module) -> torch.nn.Module:
    """LayerScale starts near zero and LayerNorm at identity; randomise both so ignoring them would show."""
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "gamma"):
                m.gamma.uniform_(0.5, 1.5)
            if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def fmnist_like(seed: int = 0, depth: int = 4) -> torch.nn.Module:
    """A small stand-in for the shipped fmnist-vit: 1×28×28 input, 7×7 patches, 10 classes."""
    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224",
        img_size=28,
        patch_size=4,
        depth=depth,
        embed_dim=48,
        num_heads=3,
        in_chans=1,
        num_classes=10,
    ).eval()


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module of tiny models: thread start-up would dominate, and other jobs
    may share the machine."""
    with one_thread():
        yield


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


# A threshold this far (as a ratio) from every value it is compared with cannot flip under float error:
# compiled, exported and other CPUs' kernels move a score variance by about 1e-6 of itself.
CLEAR_RATIO = 1.01


def threshold_between(values: torch.Tensor) -> float:
    """A threshold that splits ``values`` into two non-empty groups at their widest relative gap: the
    geometric mean of the gap's ends, so no value sits on it (a median of an even count would)."""
    v = values.detach().double().flatten().sort().values.clamp_min(1e-30)
    ratios = v[1:] / v[:-1]
    i = int(ratios.argmax())
    assert ratios[i] > CLEAR_RATIO**2, f"no gap wide enough to split {v.tolist()} clear of float error"
    return float((v[i] * v[i + 1]).sqrt())


def clear_of(threshold: float, values) -> bool:
    """Whether every value (tensors, or a dict of them) lies at least ``CLEAR_RATIO`` away from
    ``threshold``, so that no branch taken against it hinges on the last bits."""
    tensors = values.values() if isinstance(values, dict) else [values]
    v = torch.cat([t.detach().double().flatten() for t in tensors]).clamp_min(1e-30)
    ratio = torch.maximum(v / threshold, threshold / v)
    return bool((ratio > CLEAR_RATIO).all())


def images(batch: int = 3, size: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g)
