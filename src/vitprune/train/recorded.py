"""A training run's command, recorded in its output directory, so ``vitprune train --resume RUN`` needs
nothing else: every option not given again is the run's own, and a given option that would make the
resumed run differ from an uninterrupted one (its schedule, data, model, method, ...) is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitprune.files.atomic import json_bytes, write_bytes

FILE = "train.json"
# Options that change nothing a resumed run computes: where it writes, how it loads and logs.
FREE = ("resume", "out", "workers", "eval_every", "json")
# Namespace entries that are not options of the run.
NOT_OPTIONS = ("run", "command", "argv", "verb_parser", "method_config", "given")


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option written in ``argv`` (``--lr 1e-3``, ``--lr=1e-3``, ``-p r=1``, and
    unambiguous prefixes as argparse takes them), whatever its value."""
    strings = parser._option_string_actions  # option string → action (argparse's own table)
    given = set()
    for token in argv:
        if not token.startswith("-") or token == "-" or token[1:2].isdigit():
            continue
        flag = token.split("=", 1)[0]
        if flag not in strings and flag.startswith("--"):  # argparse takes an unambiguous prefix
            flag = next((s for s in strings if s.startswith(flag)), flag)
        if flag in strings:
            given.add(strings[flag].dest)
    return given


def record(args: argparse.Namespace, out: str | Path) -> None:
    """Write the run's options to ``out/train.json`` (atomically)."""
    options = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_OPTIONS}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_bytes(Path(out) / FILE, json_bytes({"options": options}))


def recorded_options(run: str | Path) -> tuple[Path, dict] | None:
    """(run directory, its recorded options) for ``--resume run`` (the run's directory or one of its
    checkpoints), or None for a run that recorded none."""
    for directory in (Path(run), Path(run).parent):
        if (directory / FILE).is_file():
            return directory, json.loads((directory / FILE).read_text())["options"]
    return None


def resumed(args: argparse.Namespace, given: set[str]) -> argparse.Namespace:
    """``args`` with the options of the run ``args.resume`` recorded, where not given again; a
    ``ValueError`` naming every given option that differs from the run's and would make it inexact."""
    found = recorded_options(args.resume)
    if found is None:
        return args
    directory, options = found
    changed = [
        f"--{key.replace('_', '-')} {_text(getattr(args, key))} (the run's: {_text(value)})"
        for key, value in options.items()
        if key in given and key not in FREE and _plain(getattr(args, key)) != value
    ]
    if changed:
        raise ValueError(
            f"--resume {args.resume}: {'; '.join(changed)} would make the resumed run differ from an "
            f"uninterrupted one (schedule, data, model or method); drop them to continue the run exactly, "
            f"or start a new run from its weights with --checkpoint {directory}/last/model.safetensors"
        )
    for key, value in options.items():
        if key not in given and key != "resume":
            setattr(args, key, value)
    if "out" not in given:
        args.out = str(directory)
    return args


def _plain(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _text(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
