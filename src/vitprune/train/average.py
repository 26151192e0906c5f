"""Weight averaging: one model whose weights are the mean of several checkpoints' weights.

Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better Generalization" (SWA):
averaging the weights reached at the low-learning-rate end of each cycle of a cyclic schedule finds a
point nearer the centre of the basin the cycles explore, which generalises better than any one of
them. A ViT has no batch norm, so the average needs no statistics recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def average_state_dicts(states: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of ``states`` (same names, shapes and dtypes in each).

    Floating tensors are summed in float64 and cast back to their dtype; any other tensor (an integer
    buffer) must be equal in every state and is kept as it is.
    """
    if not states:
        raise ValueError("average_state_dicts needs at least one state dict")
    first = states[0]
    for i, state in enumerate(states[1:], 1):
        if state.keys() != first.keys():
            diff = sorted(set(state) ^ set(first))
            raise ValueError(f"state dict {i} does not have state dict 0's names: {diff[:5]} differ")
        wrong = [k for k, t in state.items() if (t.shape, t.dtype) != (first[k].shape, first[k].dtype)]
        if wrong:
            raise ValueError(f"state dict {i} differs from state dict 0 in shape or dtype at {wrong[:5]}")
    out = {}
    for name, tensor in first.items():
        if tensor.is_floating_point():
            total = sum(state[name].to(torch.float64) for state in states)
            out[name] = (total / len(states)).to(tensor.dtype)
        elif all(torch.equal(state[name], tensor) for state in states):
            out[name] = tensor.clone()
        else:
            raise ValueError(f"{name} is a {tensor.dtype} tensor that differs between the checkpoints")
    return out
