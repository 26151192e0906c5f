"""Issue 32: the help texts teach what the README does: --model names every kind of model, bench's
options show their defaults (fp32 only on a CPU), every verb has a description line."""

from __future__ import annotations

import argparse

import pytest
import torch

from vitprune.cli.main import parser


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _option(verb: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return verb._option_string_actions.get(flag)


@pytest.mark.parametrize("name", [n for n, v in _verbs().items() if _option(v, "--model")])
def test_model_help_names_zoo_hf_and_prune_outputs(name):
    words = _option(_verbs()[name], "--model").help
    assert "fmnist-vit" in words and "hf:PATH" in words and "vitprune prune" in words and "timm" in words


def test_bench_shows_its_defaults_and_times_fp32_only_on_a_cpu():
    bench = _verbs()["bench"]
    text = bench.format_help()
    for flag in ("--rounds", "--runs", "--precisions"):
        assert "%(default)s" in _option(bench, flag).help, flag
    assert "(default: 5;" in text.replace("\n", " ") or "(default: 5)" in text.replace("\n", " ")
    args = bench.parse_args([])
    assert args.precisions == (["fp32", "bf16"] if torch.cuda.is_available() else ["fp32"])


@pytest.mark.parametrize("name", list(_verbs()))
def test_every_verb_has_a_description(name):
    verb = _verbs()[name]
    assert verb.description and verb.description.endswith("."), name
