"""Where a model runs."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-free model)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
