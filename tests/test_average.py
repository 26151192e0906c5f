"""Weight averaging (SWA): the mean of several checkpoints' weights, refused where it has no meaning."""

import pytest
import torch

from vitprune.train import average_state_dicts


def test_mean_of_float_tensors_keeps_dtype_and_integer_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0], dtype=torch.float16), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([2.0], dtype=torch.float16), "n": torch.tensor([3])}
    c = {"w": torch.tensor([2.0, 1.0]), "h": torch.tensor([3.0], dtype=torch.float16), "n": torch.tensor([3])}
    out = average_state_dicts([a, b, c])
    assert torch.equal(out["w"], torch.tensor([2.0, 3.0]))
    assert out["h"].dtype == torch.float16 and out["h"].item() == 2.0
    assert torch.equal(out["n"], torch.tensor([3])) and out["n"].dtype == torch.int64
    assert torch.equal(average_state_dicts([a])["w"], a["w"])  # one state: itself


def test_refuses_what_cannot_be_averaged():
    a = {"w": torch.zeros(2), "n": torch.tensor([1])}
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="names.*'v'"):
        average_state_dicts([a, {"v": torch.zeros(2), "n": torch.tensor([1])}])
    with pytest.raises(ValueError, match="shape or dtype at \\['w'\\]"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor([1])}])
    with pytest.raises(ValueError, match="n is a torch.int64 tensor that differs"):
        average_state_dicts([a, {"w": torch.zeros(2), "n": torch.tensor([2])}])
