"""Crash-safe file writing: write to a temporary name in the same directory, then rename.

``os.replace`` within one directory is atomic on POSIX, so a reader sees either the
old file or the complete new one, never a torn write, even if the process is
killed mid-write. Temporary files are created private; :data:`USUAL_MODE` gives them
the permissions a plain ``open`` would have.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask (reading it requires setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()
USUAL_MODE = 0o666 & ~UMASK  # what a new file gets from the umask (temp-file writers lose it)


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (flushed to disk before the rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), USUAL_MODE)  # mkstemp creates 0600; give the usual permissions
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def json_bytes(obj: object) -> bytes:
    """``obj`` as indented UTF-8 JSON (a diverged loss is kept as Python's ``NaN`` token)."""
    return (json.dumps(obj, indent=1) + "\n").encode()


def point_link(link: Path, target: str) -> None:
    """Atomically make ``link`` a symlink to ``target`` (a name relative to the link's directory)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    sync_dir(link.parent)


def sync_dir(path: Path) -> None:
    """Flush a directory's entries (the renames in it) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
