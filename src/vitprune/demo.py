"""``make demo``: dense vs ToMe vs EViT on a random-weight DeiT-S — MACs and measured throughput.

ToMe runs at r=13 (the paper's DeiT-S setting, 2.70 GMACs) and EViT is solved for the same MACs,
so the two compare at equal cost. Weights are random (nothing is downloaded), so this shows cost
and speed, not accuracy.
"""

from __future__ import annotations

import copy

import timm
import torch

import vitprune
from vitprune.measure import macs
from vitprune.measure.bench import compare
from vitprune.report import table


def main(batch: int = 64) -> None:
    torch.manual_seed(0)
    dense = timm.create_model("deit_small_patch16_224").eval()
    tome = vitprune.apply(copy.deepcopy(dense), "tome", r=13)
    evit = vitprune.apply(
        copy.deepcopy(dense), "evit", macs=macs(tome, torch.rand(1, 3, 224, 224)).mean / 1e9
    )
    models = {"dense": dense, "tome r=13": tome, "evit (same MACs)": evit}
    print(f"DeiT-S 224, random weights, CPU fp32, batch {batch}, {torch.get_num_threads()} threads")
    x = torch.rand(1, 3, 224, 224)
    speed = compare(models, batch, rounds=2, runs=1)
    rows = []
    for name, model in models.items():
        g = macs(model, x).mean / 1e9
        rows.append(
            {
                "model": name,
                "GMACs": g,
                "MACs ratio": g / (macs(dense, x).mean / 1e9),
                "images/s": speed[name],
                "speedup": speed[name] / speed["dense"],
            }
        )
    print(table(rows))


if __name__ == "__main__":
    main()
