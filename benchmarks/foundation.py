"""Foundation benchmark (issue 2): DeiT-S at 224, random weights.

Measures, in one interleaved run per setting: the unpatched model, the patched model at zero
reduction (ToMe r=0), ToMe r=13 and EViT at ToMe's MACs; throughput at batch 64 and latency at
batch 1, fp32 and bf16 autocast. Run: ``.venv/bin/python benchmarks/foundation.py`` (add
``--device cuda`` on a GPU machine; the papers used batch 256 there: ``--batch 256``).
"""

from __future__ import annotations

import argparse
import copy

import timm
import torch
from common import machine, write_json

import vitprune
from vitprune.measure import macs
from vitprune.measure.bench import compare


def models(device: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    dense = timm.create_model("deit_small_patch16_224").eval().to(device)
    return {
        "unpatched": dense,
        "patched r=0": vitprune.apply(copy.deepcopy(dense), "tome", r=0),
        "tome r=13": vitprune.apply(copy.deepcopy(dense), "tome", r=13),
        "evit @ tome MACs": vitprune.apply(copy.deepcopy(dense), "evit", macs="2.7027G"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--name", default="foundation_cpu")
    args = ap.parse_args()
    nets = models(args.device)
    x = torch.rand(1, 3, 224, 224, device=args.device)
    gmacs = {name: macs(m, x).mean / 1e9 for name, m in nets.items()}
    rows = []
    for precision in args.precisions.split(","):
        for batch, runs in ((args.batch, 2), (1, 20)):
            ips = compare(nets, batch, rounds=args.rounds, runs=runs, precision=precision)
            for name, value in ips.items():
                rows.append(
                    {
                        "model": name,
                        "precision": precision,
                        "batch_size": batch,
                        "images_per_s": value,
                        "ms_per_batch": 1000 * batch / value,
                        "speedup_vs_unpatched": value / ips["unpatched"],
                        "gmacs": gmacs[name],
                        "macs_ratio": gmacs[name] / gmacs["unpatched"],
                    }
                )
                print(rows[-1], flush=True)
    print(
        write_json(
            args.name,
            {
                "benchmark": "foundation",
                "model": "deit_small_patch16_224",
                "machine": machine(),
                "rows": rows,
            },
        )
    )


if __name__ == "__main__":
    main()
