"""Accuracy computation against models whose predictions are known in advance."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vitprune.measure.evaluate import evaluate


class Oracle(nn.Module):
    """Returns the input row itself as logits, so predictions are chosen by the test."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.scale


def loader(logits, labels, batch_size=3):
    return DataLoader(TensorDataset(logits, labels), batch_size=batch_size)


def test_exact_top1_and_top5():
    # 10 classes; sample i ranks classes by the row's values (descending).
    logits = torch.stack([torch.arange(10.0).flip(0)] * 4)  # ranking: 0, 1, 2, ..., 9
    labels = torch.tensor([0, 3, 7, 4])  # hit@1, hit@5, miss, hit@5
    result = evaluate(Oracle(), loader(logits, labels), progress=False)
    assert result == {"top1": 25.0, "top5": 75.0, "n": 4}


def test_fewer_than_five_classes():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    labels = torch.tensor([1, 2])
    result = evaluate(Oracle(), loader(logits, labels), progress=False)
    assert result == {"top1": 50.0, "top5": 100.0, "n": 2}


def test_bf16_precision_and_model_left_in_eval():
    model = Oracle().train()
    logits = torch.eye(6)
    labels = torch.arange(6)
    result = evaluate(model, loader(logits, labels), precision="bf16", progress=False)
    assert result["top1"] == 100.0 and not model.training


def test_empty_loader_rejected():
    with pytest.raises(ValueError, match="no samples"):
        evaluate(Oracle(), loader(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), progress=False)
