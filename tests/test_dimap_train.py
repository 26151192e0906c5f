"""Fixed-mask fine-tuning (DIMAP, He et al. ICLR 2024 §4.1): pruned weights stay exactly zero."""

import pytest
import torch
import torch.nn.functional as F
from test_dimap import tiny_images, tiny_swin

from vitprune.weights import MaskKeeper, dimap_masks
from vitprune.weights.scores import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _train(model, steps, after_step=None):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    x, y = tiny_images(4), torch.tensor([0, 1, 2, 3])
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if after_step is not None:
            after_step()


def _zeros_kept(model, masks):
    params = dict(model.named_parameters())
    return all(bool((params[name][~mask] == 0).all()) for name, mask in masks.items())


@pytest.mark.parametrize("hooks, restore", [(True, True), (True, False), (False, True)])
def test_pruned_weights_stay_exactly_zero_through_adamw(hooks, restore):
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with MaskKeeper(model, masks, hooks=hooks) as keeper:
        assert _zeros_kept(model, masks)
        _train(model, steps=4, after_step=keeper.restore if restore else None)
    assert _zeros_kept(model, masks)
    params = dict(model.named_parameters())
    kept = next(iter(masks))
    assert not torch.equal(params[kept][masks[kept]], before[kept][masks[kept]])  # live weights did train


def test_without_keeper_zeros_drift():
    model = tiny_swin()
    masks = dimap_masks(model, params=0.5)
    MaskKeeper(model, masks, hooks=False)  # applies the masks once, nothing more
    _train(model, steps=2)
    assert not _zeros_kept(model, masks)


def test_keeper_rejects_foreign_masks():
    model = tiny_swin()
    with pytest.raises(ValueError, match="no such parameter"):
        MaskKeeper(model, {"blocks.0.attn.qkv.weight": torch.ones(3, 3, dtype=torch.bool)})
