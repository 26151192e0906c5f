"""Operator calls per forward: what a token method costs in dispatch, whatever the machine (issue 33).

At batch 1 in eager PyTorch a forward's time is mostly per-call overhead (5-10 us of dispatch each),
not arithmetic, so the number of aten calls says how much a method adds where times cannot: counts
are exact and the same on every machine. The profiler records every dispatcher call, nested ones
included (the views, ``as_strided`` and copies an operator makes), which is what the dispatch time
is spent on; a ``TorchDispatchMode`` sees only the outermost call of each operator.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile


def aten_calls(model: nn.Module, images: Tensor) -> Counter:
    """Calls of each aten operator in one inference forward of ``model`` on ``images``, by name.

    One untimed forward runs first, so what a method builds once per input shape (cached index
    tensors) is not counted as per-forward cost."""
    with torch.inference_mode():
        model(images)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(images)
    return Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
