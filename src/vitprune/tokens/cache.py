"""Constant index and mask tensors built once per shape, device and dtype, then reused (issue 33).

At batch 1 in eager mode every aten call costs microseconds of dispatch, so a reducing block that
rebuilt its ``arange``s and masks each forward paid more for them than their arithmetic. Under
``torch.compile`` (or export) nothing is cached: the tensor is built inside the graph, where it is
a constant the compiler folds, and no fake tensor ever reaches this cache.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import Tensor

_LIMIT = 512  # distinct keys kept before the cache starts over (shapes seen by one process are few)
_CACHE: dict[Hashable, Tensor] = {}


def constant(key: Hashable, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, built once per ``key`` (which must name every shape, device and dtype it depends on).

    The tensor is shared: callers must never write into it. It is built outside inference mode, so a
    training step may save it for backward after an inference forward built it.
    """
    if torch.compiler.is_compiling():
        return make()
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= _LIMIT:
            _CACHE.clear()
        with torch.inference_mode(False), torch.no_grad():
            found = _CACHE[key] = make()
    return found


def scalar(value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype and device: an operand that costs one aten call,
    where a Python float costs five (it is wrapped in a tensor and converted on every call)."""
    key = ("scalar", value, like.dtype, like.device)
    return constant(key, lambda: torch.tensor(value, dtype=like.dtype, device=like.device))
