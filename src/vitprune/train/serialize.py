"""Split training state into tensors (for safetensors) and plain values (for JSON), and back.

Used instead of ``torch.save`` so that checkpoints never contain pickles.
"""

from __future__ import annotations

import torch

TUPLE_TAG = "__tuple__"


def optimizer_parts(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser ``state_dict()`` into ``{"state.<param>.<key>": tensor}`` and JSON values."""
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = encode(value)
    return tensors, {"param_groups": encode(state["param_groups"]), "scalars": scalars}


def optimizer_state(tensors: dict[str, torch.Tensor], values: dict) -> dict:
    """Rebuild an optimiser ``state_dict()`` from :func:`optimizer_parts`' output."""
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in values["scalars"].items():
        state.setdefault(int(index), {}).update(decode(entries))
    return {"state": state, "param_groups": decode(values["param_groups"])}


def encode(value: object) -> object:
    """Make a literal (dicts, lists, tuples, numbers, strings, None) JSON-safe, tagging tuples.

    Tuples survive the round trip, so a method's options are rebuilt exactly as they were given.
    Other types raise ``TypeError``.
    """
    if isinstance(value, tuple):
        return {TUPLE_TAG: [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot store a dict with non-string keys: {list(value)[:5]}")
        return {k: encode(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} value {value!r} in JSON")


def decode(value: object) -> object:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {TUPLE_TAG}:
            return tuple(decode(v) for v in value[TUPLE_TAG])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
