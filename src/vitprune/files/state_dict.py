"""Read and write model weights safely.

Reading never executes code from the file: ``.safetensors`` holds raw tensors only,
and PyTorch pickles are opened with ``weights_only=True``, which refuses any object
that is not a tensor or a plain container. Writing always produces safetensors,
atomically, so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from vitprune.files.atomic import write_bytes

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".tar")  # .tar: timm train.py's model_best.pth.tar
WRAPPER_KEYS = ("model", "state_dict", "model_ema")
# timm's train.py stores its argparse.Namespace under "args"; rebuilding one only sets attributes.
SAFE_GLOBALS = [argparse.Namespace]


class CheckpointError(ValueError):
    """A checkpoint could not be read, or does not fit the model it was loaded into."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a flat ``{name: tensor}`` CPU dict from ``.safetensors`` or ``.pth``/``.pt``/``.bin``/``.tar``.

    Training checkpoints that nest the weights under ``"model"``, ``"state_dict"``
    or ``"model_ema"`` are unwrapped (an ``argparse.Namespace`` beside them, as
    timm's train.py writes, is tolerated). Corrupt files, pickles containing arbitrary
    objects and files that do not hold tensors raise :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(os.fspath(path), device="cpu")
        except SafetensorError as err:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {err}") from err
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"unsupported checkpoint type {suffix!r} for {path}; expected .safetensors or {PICKLE_SUFFIXES}"
        )
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds pickled objects other than tensors and plain containers"
            f"{_unpickling_detail(err)}, and unpickling them could run code; where you trust the file, "
            f"save its state_dict with safetensors.torch.save_file and pass the .safetensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path} (corrupt or truncated?): {_first_line(err)}"
        ) from err
    return _tensors_only(_unwrap(obj), path)


def _first_line(err: Exception) -> str:
    """The first line of an error message, or the exception's type when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _unpickling_detail(err: Exception) -> str:
    """`` (e.g. NAME)`` for the offending global of torch's weights-only error, else nothing.

    torch's own text suggests ``weights_only=False``, which is exactly what we must not
    tell users to do with an untrusted file, so nothing else of it is kept.
    """
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    return f" (e.g. {found.group(1)})" if found else ""


def _unwrap(obj: object) -> object:
    """Return the nested weights dict of a training checkpoint, or ``obj`` unchanged."""
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                return obj[key]
    return obj


def _tensors_only(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Check that ``obj`` is a ``{str: tensor}`` mapping and return it as a dict."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} entries are not named tensors, e.g. {bad[:5]}")
    return dict(obj)


def save_state_dict(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write ``state`` to ``path`` as safetensors, atomically (:func:`write_bytes`), and return the path.

    Tensors are moved to CPU and copied into their own contiguous storage (safetensors
    rejects views and tied weights). ``metadata`` values are stored as strings.
    """
    path = Path(path)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, save(tensors, metadata=meta))
    return path
