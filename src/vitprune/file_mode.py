"""The permissions a new file would get from the process umask (temp-file writers lose them)."""

from __future__ import annotations

import os


def _umask() -> int:
    """The process umask (reading it requires setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()
USUAL_MODE = 0o666 & ~UMASK
