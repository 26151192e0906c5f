"""Same-run A/B of issue 33's eager rewrite: vitprune now against the code just before it, in one process.

The old code is imported under another name, so both run interleaved in the same rounds
(``vitprune.measure.bench.compare``) on the same DeiT-Ti (224 px, random weights), each method at 0.6x
dense MACs (STAR: alpha 1, one keep rate per block near 0.6x). Prepare the old tree once:

    mkdir -p /tmp/old && git archive d34e6c8^ src/vitprune | tar -x -C /tmp/old
    mv /tmp/old/src/vitprune /tmp/old/vitprune_old
    grep -rl vitprune /tmp/old/vitprune_old --include=*.py | xargs sed -i 's/\\bvitprune\\b/vitprune_old/g'

then, for example:

    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/ab_before_issue33.py eager tome,evit,ppt,star,sait 64 9
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/ab_before_issue33.py compiled tome,evit,ppt 64 5

One JSON line per method: ``new_vs_old`` (images/s now over before), and each against dense.
"""

from __future__ import annotations

import argparse
import copy
import json

import timm
import torch
import vitprune_old
from eager_b1 import star_rates

import vitprune
from vitprune.measure.bench import compare

TARGET = 0.6


def build(package, dense: torch.nn.Module, method: str) -> torch.nn.Module:
    config = {"alpha": 1.0, "rates": star_rates(dense, TARGET)} if method == "star" else {"macs": TARGET}
    return package.apply(copy.deepcopy(dense), method, **config)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("eager", "compiled"))
    ap.add_argument("methods", help="comma-separated token methods")
    ap.add_argument("batch", type=int)
    ap.add_argument("rounds", type=int, nargs="?", default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    dense = timm.create_model("deit_tiny_patch16_224", num_classes=10).eval()
    for method in args.methods.split(","):
        models = {
            "dense": dense,
            "new": build(vitprune, dense, method),
            "old": build(vitprune_old, dense, method),
        }
        if args.mode == "compiled":
            models = {name: torch.compile(model) for name, model in models.items()}
        ips = compare(models, args.batch, rounds=args.rounds, runs=1 if args.batch > 8 else 10)
        row = {"method": method, "mode": args.mode, "batch": args.batch, "rounds": args.rounds}
        row |= {"new_vs_old": ips["new"] / ips["old"], "new_vs_dense": ips["new"] / ips["dense"]}
        row |= {"old_vs_dense": ips["old"] / ips["dense"], "images_per_s": ips}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
