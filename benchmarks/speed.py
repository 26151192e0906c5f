"""Speed of token methods against the unpatched model, measured interleaved in one run.

    .venv/bin/python benchmarks/speed.py --name ppt_cpu ppt:r=50 tome:r=13
    .venv/bin/python benchmarks/speed.py --name foundation_cpu r0=tome:r=0 tome:r=13 evit:macs=2.7027G

Each positional argument is ``[label=]method[:key=value,...]``. For every precision the script
times batch ``--batch`` (throughput) and batch 1 (latency) for the unpatched model and each
configuration, rotating the order every round and keeping the median. Random weights: speed and
MACs only (per-image MACs averaged over 8 random images, for the input-adaptive methods). On a
GPU machine pass ``--device cuda --batch 256`` (the papers' setting).
"""

from __future__ import annotations

import argparse
import copy

import timm
import torch
from common import parse_config, save_results

import vitprune
from vitprune.measure import macs
from vitprune.measure.bench import speed_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="[label=]method[:key=value,...]")
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--model", default="deit_small_patch16_224")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency-runs", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()

    torch.manual_seed(0)
    dense = timm.create_model(args.model).eval().to(args.device)
    nets = {"unpatched": dense}
    for label, method, config in map(parse_config, args.configs):
        nets[label] = vitprune.apply(copy.deepcopy(dense), method, **config)
    x = torch.rand(8, 3, 224, 224, device=args.device)  # adaptive methods: MACs averaged over images
    gmacs = {name: macs(m, x).mean / 1e9 for name, m in nets.items()}
    batches = [(args.batch, 2), (1, args.latency_runs)]
    rows = speed_table(nets, batches, args.precisions.split(","), args.rounds)
    for row in rows:
        row["gmacs"], row["macs_ratio"] = gmacs[row["model"]], gmacs[row["model"]] / gmacs["unpatched"]
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(save_results(args.name, args.model, rows))


if __name__ == "__main__":
    main()
