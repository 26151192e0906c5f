"""At zero reduction a patched model is the unpatched model; remove() gives it back bit for bit."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import images, make_model

import vitprune

ZERO = [("tome", {"r": 0}), ("evit", {"keep": 1.0})]


@pytest.mark.parametrize("method,config", ZERO)
def test_zero_reduction_matches_unpatched(family, method, config):
    model = make_model(family)
    x = images()
    with torch.no_grad():
        ref = model(x)
        if method == "evit" and model.cls_token is None:
            pytest.skip("evit needs a class token")
        vitprune.apply(model, method, **config)
        out = model(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_patched_model_still_uses_fused_attention(monkeypatch):
    model = vitprune.apply(make_model("vit"), "tome", r=4)
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get("attn_mask"))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    with torch.no_grad():
        model(images())
    assert len(calls) == len(model.blocks)
    assert calls[0] is None  # no bias before any merge
    assert all(c is not None and c.shape[1:3] == (1, 1) for c in calls[1:])  # log-size bias afterwards


def test_remove_is_bit_identical(family):
    model = make_model(family)
    pristine = copy.deepcopy(model)
    x = images()
    vitprune.apply(model, "tome", r=3)
    with torch.no_grad():
        model(x)
    vitprune.remove(model)
    assert type(model) is type(pristine)
    assert all(type(a) is type(b) for a, b in zip(model.modules(), pristine.modules(), strict=True))
    assert not any(m._forward_hooks for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(x), pristine(x))
    assert model.state_dict().keys() == pristine.state_dict().keys()


def test_reapply_replaces_method():
    model = make_model("vit")
    vitprune.apply(model, "tome", r=4)
    vitprune.apply(model, "evit", keep=0.5, layers=[1])
    assert model.vitprune.method.name == "evit"
    capturing = [m for m in model.modules() if hasattr(m, "_vp_capture")]
    assert capturing == [blk.attn.qkv for blk in model.blocks]
    assert all(type(m).__mro__[1] is torch.nn.Linear for m in capturing)  # captured once, not twice


def test_deepcopy_of_patched_model_works_and_unpatches():
    model = vitprune.apply(make_model("vit"), "tome", r=4)
    twin = copy.deepcopy(model)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
    vitprune.remove(twin)
    assert not any(m._forward_hooks or hasattr(m, "_vp_capture") for m in twin.modules())
    assert all(type(blk.attn.qkv) is torch.nn.Linear for blk in twin.blocks)
