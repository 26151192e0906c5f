"""Bad input gets a clear error naming the bad value and what is allowed."""

import pytest
import timm
from conftest import make_model

import vitprune


@pytest.mark.parametrize(
    "name,kwargs",
    [("resnet18", {}), ("swin_tiny_patch4_window7_224", {})],  # RoPE ViTs are supported: test_families
)
def test_unsupported_family_names_supported_ones(name, kwargs):
    model = timm.create_model(name, **kwargs)
    with pytest.raises(vitprune.UnsupportedModelError, match="vit_\\*, deit_\\*"):
        vitprune.apply(model, "tome", r=1)


@pytest.mark.parametrize(
    "method,config,match",
    [
        ("tome", {"r": -1}, "r=-1"),
        ("tome", {"r": [1, -2]}, "r=-2"),
        ("tome", {"r": 2.5}, "r=2.5"),
        ("tome", {"r": [1] * 9}, "9 entries"),
        ("tome", {"r": 4, "inflection": 2.0}, "inflection=2.0"),
        ("tome", {"r": (3, 0.0)}, r"r=\(3, 0.0\) is ambiguous"),  # was a schedule while (3, 0) was per block
        ("tome", {"r": [2, 0.5, 1]}, "ambiguous"),
        ("tome", {"macs": 0.8, "inflection": 0.5}, "inflection= shapes an r schedule"),
        ("evit", {"keep": 0.0}, "keep=0.0"),
        ("evit", {"keep": 1.5}, "keep=1.5"),
        ("evit", {"keep": 0.5, "layers": [7]}, "layer 7"),
        ("evit", {"keep": 0.5, "layers": [-1]}, "layer -1"),
        ("evit", {"keep": [0.5], "layers": [1, 2]}, "1 keep rates"),
        ("tome", {"macs": 1.5e-9}, "out of reach"),
        ("tome", {"macs": -0.2}, "macs=-0.2"),
        ("tome", {"macs": "fast"}, "macs='fast'"),
        ("tome", {"r": 2, "macs": 0.5}, "not both"),
        ("tome", {"ratio": 0.5}, "unknown option"),
    ],
)
def test_invalid_settings_raise_value_error(method, config, match):
    with pytest.raises(ValueError, match=match):
        vitprune.apply(make_model("vit"), method, **config)


def test_unknown_method_lists_available():
    with pytest.raises(ValueError, match="unknown method 'magic'; available: .*'evit'.*'tome'"):
        vitprune.apply(make_model("vit"), "magic")


def test_evit_refuses_models_without_class_token():
    with pytest.raises(ValueError, match="class_token=False"):
        vitprune.apply(make_model("avgpool_no_cls"), "evit", keep=0.5)


def test_failed_apply_leaves_model_untouched():
    model = make_model("vit")
    with pytest.raises(ValueError):
        vitprune.apply(model, "tome", r=-3)
    assert not hasattr(model, "vitprune")


def test_methods_lists_summaries():
    listed = vitprune.methods()
    assert {"tome", "evit"} <= set(listed) and all(listed.values())


def test_tome_schedule_is_its_own_key_and_per_block_lists_stay_lists():
    ramp = vitprune.apply(make_model("vit"), "tome", r=4, inflection=-0.5).vitprune.method.per_layer
    assert ramp == [6, 4, 3, 2]  # ToMe's ramp from r·(1 - inflection) down to 2r minus that
    assert vitprune.apply(make_model("vit"), "tome", r=(3, 0)).vitprune.method.per_layer == [3, 0, 0, 0]
