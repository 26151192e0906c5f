"""Training checkpoints: one directory per saved epoch, committed by a marker file written last.

Layout of ``out_dir``::

    epoch-0003/model.safetensors      weights of the bare (unwrapped) model
    epoch-0003/optimizer.safetensors  optimiser tensors (moments, step counts)
    epoch-0003/rng.safetensors        torch generator states, one set per rank
    epoch-0003/state.json             epoch, step, config, model spec, history, RNG and optimiser values
    epoch-0003/checkpoint.json        the marker: names, sizes and SHA-256 of the files above
    last -> epoch-0003                symlinks, switched atomically once the marker exists
    best -> epoch-0002

Every file is written under a temporary name and renamed into place, and the marker
comes last, so a directory without a valid marker is an interrupted save and is
ignored; ``last`` only ever points at complete checkpoints. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as tensor_bytes

import vitprune.files.atomic as atomic
from vitprune.files.state_dict import CheckpointError

FORMAT = "vitprune-train-checkpoint/1"
MARKER = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "state.json"
LINKS = ("last", "best")


@dataclass
class Checkpoint:
    """A complete checkpoint read back from disk."""

    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]
    state: dict


def save(
    out_dir: str | os.PathLike,
    epoch: int,
    model: dict[str, torch.Tensor],
    optimizer: dict[str, torch.Tensor],
    rng: dict[str, torch.Tensor],
    state: dict,
    best: bool = False,
) -> Path:
    """Write a complete checkpoint for ``epoch``, point ``last`` (and ``best``) at it, drop stale ones.

    ``state`` must be JSON-serialisable. Returns the new checkpoint directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = _fresh_dir(out, f"epoch-{epoch:04d}")
    blobs = {
        MODEL_FILE: tensor_bytes(_cpu(model), metadata={"format": FORMAT, "epoch": str(epoch)}),
        OPTIMIZER_FILE: tensor_bytes(_cpu(optimizer)),
        RNG_FILE: tensor_bytes(_cpu(rng)),
        STATE_FILE: atomic.json_bytes({"format": FORMAT, **state}),
    }
    for name, data in blobs.items():
        atomic.write_bytes(path / name, data)
    files = {
        name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in blobs.items()
    }
    atomic.write_bytes(path / MARKER, atomic.json_bytes({"format": FORMAT, "epoch": epoch, "files": files}))
    atomic.point_link(out / "last", path.name)
    if best:
        atomic.point_link(out / "best", path.name)
    _prune(out)
    return path


def find(path: str | os.PathLike) -> Path:
    """The complete checkpoint named by ``path``, as a resolved directory path.

    ``path`` may be a checkpoint directory, or a run's output directory, in which case
    ``last`` is used, falling back to the newest complete ``epoch-*`` directory.
    Raises :class:`CheckpointError` when there is none.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path}")
    if (path / MARKER).exists():
        _check_complete(path)
        return path.resolve()
    candidates = [path / "last", *sorted(path.glob("epoch-*"), key=_epoch_order, reverse=True)]
    for candidate in candidates:
        if candidate.is_dir() and _is_complete(candidate):
            return candidate.resolve()
    raise CheckpointError(
        f"no complete checkpoint in {path}: a checkpoint is complete once its {MARKER} is written, and "
        f"none was found (was the run interrupted before finishing its first epoch, or while saving it?)"
    )


def load(path: str | os.PathLike) -> Checkpoint:
    """Read the complete checkpoint :func:`find` selects, verifying sizes and checksums."""
    path = find(path)
    marker = _read_json(path / MARKER)
    blobs = {}
    for name, info in marker["files"].items():
        data = (path / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise CheckpointError(f"{path / name} does not match its checksum in {MARKER}: corrupt file")
        blobs[name] = data
    try:
        tensors = {name: load_tensors(blobs[name]) for name in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)}
    except SafetensorError as err:
        raise CheckpointError(f"cannot read tensors in {path}: {err}") from err
    return Checkpoint(
        path=path,
        model=tensors[MODEL_FILE],
        optimizer=tensors[OPTIMIZER_FILE],
        rng=tensors[RNG_FILE],
        state=json.loads(blobs[STATE_FILE]),
    )


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors rejects shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from err


def _check_complete(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path``'s marker is valid and its files have their sizes."""
    marker = _read_json(path / MARKER)
    if marker.get("format") != FORMAT or not isinstance(marker.get("files"), dict):
        raise CheckpointError(f"{path / MARKER} is not a {FORMAT} marker")
    for name, info in marker["files"].items():
        file = path / name
        if not file.is_file() or file.stat().st_size != info["bytes"]:
            raise CheckpointError(f"{file} is missing or has the wrong size; the checkpoint is incomplete")


def _is_complete(path: Path) -> bool:
    try:
        _check_complete(path)
    except CheckpointError:
        return False
    return True


def _epoch_order(path: Path) -> tuple[int, int]:
    """Sort key for ``epoch-NNNN`` and ``epoch-NNNN.K`` directories (K: a re-save of the same epoch)."""
    digits = path.name.removeprefix("epoch-").split(".")
    try:
        return int(digits[0]), int(digits[1]) if len(digits) > 1 else 0
    except ValueError:
        return -1, -1


def _referenced(out: Path) -> set[str]:
    """Names of the checkpoint directories ``last`` and ``best`` point at."""
    return {os.readlink(out / link) for link in LINKS if (out / link).is_symlink()}


def _fresh_dir(out: Path, base: str) -> Path:
    """An empty directory for a new checkpoint, never one that ``last`` or ``best`` points at.

    An unreferenced leftover (an interrupted save) is cleared and reused; a referenced
    one (resuming from an older checkpoint) gets a numbered sibling ``base.1``, ...
    """
    keep = _referenced(out)
    suffix = 0
    while True:
        name = base if suffix == 0 else f"{base}.{suffix}"
        if name not in keep:
            path = out / name
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            return path
        suffix += 1


def _prune(out: Path) -> None:
    """Delete checkpoint directories that neither ``last`` nor ``best`` points at."""
    keep = _referenced(out)
    for path in out.glob("epoch-*"):
        if path.name not in keep and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
