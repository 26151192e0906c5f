"""Every numeric or enumerated option of every verb refuses nonsense at the edge, in one line naming
the option and the value, before any work starts."""

import argparse

import pytest

from vitprune.cli import main
from vitprune.cli.main import parser

# verb → the options it needs to parse at all
REQUIRED = {
    "sweep": ["--out", "x"],
    "prune": ["--out", "x"],
    "export": ["--out", "x"],
    "train": ["--model", "vit_tiny_patch16_224", "--out", "x"],
}
# option → a value it must refuse (one per numeric or enumerated option, on every verb that has it)
BAD = {
    "--batch": "0",
    "--batch-size": "0",
    "--batch-sizes": "1,0",
    "--checkpoint": None,  # a path: checked when loaded
    "--clip-grad": "0",
    "--cutmix": "-1",
    "--distill": "hard-ish",
    "--distill-tau": "0",
    "--distill-weight": "1.5",
    "--dtype": "float16",
    "--epochs": "0",
    "--format": "tflite",
    "--eval-batch": "0",
    "--eval-every": "0",
    "--images": "0",
    "--label-smoothing": "1",
    "--limit": "0",
    "--lr": "nan",
    "--macs": "0",
    "--method": "dense",
    "--methods": "tome,dimap",
    "--min-lr": "-1e-6",
    "--mixup": "-0.5",
    "--n": "0",
    "--num-classes": "0",
    "--params": "1.5",
    "--params-removed": "1.5",
    "--pattern": "4:8",
    "--precision": "fp16",
    "--precisions": "fp32,fp16",
    "--rounds": "0",
    "--runs": "-1",
    "--sait-attn": "-1",
    "--sait-kd": "-1",
    "--sait-keeps": "0.5,1.5",
    "--scope": "block",
    "--seed": "-1",
    "--structure": "neuron",
    "--targets": "all",
    "--task": "detect",
    "--threads": "0",
    "--warmup-epochs": "-1",
    "--weight-decay": "-0.1",
    "--workers": "-1",
}


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _checked(verb: argparse.ArgumentParser) -> list[str]:
    """Options of ``verb`` whose value is typed or enumerated."""
    return [
        a.option_strings[-1]
        for a in verb._actions
        if a.option_strings and (a.type is not None or a.choices is not None)
    ]


CASES = [
    (name, option)
    for name, verb in _verbs().items()
    for option in _checked(verb)
    if BAD.get(option) is not None
]


def test_every_typed_option_has_a_bad_value():
    """A new numeric or enumerated option fails here until it is validated and listed above."""
    missing = {opt for verb in _verbs().values() for opt in _checked(verb)} - set(BAD)
    assert not missing


@pytest.mark.parametrize("verb, option", CASES, ids=[f"{v}{o}" for v, o in CASES])
def test_bad_value_is_refused_in_one_line(capsys, verb, option):
    value = BAD[option]
    with pytest.raises(SystemExit) as exit_:
        main([verb, *REQUIRED.get(verb, []), f"{option}={value}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and value in err, err


@pytest.mark.parametrize(
    "kwarg, words", [("img_size=abc", "img_size='abc'"), ("patch_size=0", "patch_size=0"), ("foo=1", "foo")]
)
def test_model_kwargs_errors_name_the_flag_and_value(capsys, kwarg, words):
    code = main(["macs", "--model", "vit_tiny_patch16_224", "--model-kwargs", kwarg])
    err = capsys.readouterr().err
    assert code == 2 and "--model-kwargs" in err and words in err and len(err.strip().splitlines()) == 1
