"""DIMAP (He et al., ICLR 2024) on CPU: what weight pruning saves on paper vs. in wall-clock time.

    .venv/bin/python benchmarks/dimap_speed.py                    # full run → results/dimap_cpu.json

Rows, all interleaved in one ``compare`` session on random weights (speed and MACs only):
the dense Swin-T, DIMAP masks at ``--params`` (zeros: theoretical savings, no real speed-up) and
the structured variant at ``--params`` (whole heads and MLP units removed: a smaller model), both
module-aware (DIMAP's selection) and uniform per block (``scope="layer"``). A last row times
scoring + masking ``--score-model`` (Swin-B, 88M parameters), the issue's ≤ 10 s.
"""

from __future__ import annotations

import argparse
import copy
import time

import timm
import torch
from common import save_results

from vitprune.measure import macs
from vitprune.measure.bench import compare
from vitprune.weights import apply_masks, dimap_masks, nonzero_macs, nonzero_params, shrink


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="dimap_cpu", help="results/<name>.json")
    ap.add_argument("--model", default="swin_tiny_patch4_window7_224")
    ap.add_argument("--score-model", default="swin_base_patch4_window7_224")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--params", type=float, default=0.5, help="fraction of prunable weights removed")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3, help="timed batches per model per round")
    args = ap.parse_args()

    torch.manual_seed(0)
    dense = timm.create_model(args.model, img_size=args.img_size).eval()
    masked = copy.deepcopy(dense)
    apply_masks(masked, dimap_masks(masked, params=args.params))
    nets = {"dense": dense, f"dimap-masks-{args.params:g}": masked}
    for scope in ("module", "layer"):
        structured = copy.deepcopy(dense)
        shrink(structured, params=args.params, scope=scope)
        nets[f"neuron-head-{scope}-{args.params:g}"] = structured

    x = torch.rand(1, 3, args.img_size, args.img_size)
    speed = compare(nets, args.batch, rounds=args.rounds, runs=args.runs, precision="fp32")
    dense_macs = macs(dense, x).mean
    rows = []
    for name, net in nets.items():
        theoretical = nonzero_macs(net, x)
        rows.append(
            {
                "variant": name,
                "model": args.model,
                "nonzero_params": nonzero_params(net),
                "gmacs_dense_kernels": macs(net, x).mean / 1e9,
                "gmacs_theoretical": theoretical / 1e9,
                "theoretical_macs_ratio": theoretical / dense_macs,
                "images_per_s": speed[name],
                "speedup": speed[name] / speed["dense"],
                "batch_size": args.batch,
                "precision": "fp32",
            }
        )
        print(rows[-1], flush=True)

    big = timm.create_model(args.score_model).eval()
    start = time.perf_counter()
    apply_masks(big, dimap_masks(big, params=args.params))
    rows.append(
        {
            "variant": "score+mask time",
            "model": args.score_model,
            "nonzero_params": nonzero_params(big),
            "seconds": time.perf_counter() - start,
        }
    )
    print(rows[-1], flush=True)
    print(save_results(args.name, args.model, rows))


if __name__ == "__main__":
    main()
