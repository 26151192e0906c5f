"""STAR speed (issue 5): DeiT-S at 224, random weights, static STAR at -37% MACs vs the adaptive
variant tuned to the same *average* MACs, against the unpatched model, interleaved in one run.

The prior is an LRP calibration of the same random-weight model on a few random images (float32):
for speed only the rates matter, and they come from its ACS. The adaptive variant's r_min is
bisected so its average MACs over the timed batch equal the static variant's.

    .venv/bin/python benchmarks/star_speed.py
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import timm
import torch
from common import save_results

import vitprune
from vitprune.calibrate.artifact import save_calibration
from vitprune.calibrate.star import calibrate_star
from vitprune.measure import macs
from vitprune.measure.bench import speed_table


def adaptive_at(dense, prior: str, target: float, images: torch.Tensor, steps: int = 10):
    """The adaptive STAR whose average MACs on ``images`` are nearest ``target``."""
    lo, hi = 0.05, 1.0
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        model = vitprune.apply(copy.deepcopy(dense), "star", prior=prior, r_min=mid, adaptive=True)
        cost = macs(model, images).mean
        if best is None or abs(cost - target) < abs(best[1] - target):
            best = (model, cost, mid)
        lo, hi = (mid, hi) if cost < target else (lo, mid)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--macs", type=float, default=0.63)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calibration-images", type=int, default=4)
    args = ap.parse_args()

    torch.manual_seed(0)
    dense = timm.create_model("deit_small_patch16_224").eval()
    calibration = calibrate_star(
        dense, torch.rand(args.calibration_images, 3, 224, 224), dtype=torch.float32, progress=False
    )
    prior = save_calibration(calibration, tempfile.mkdtemp() + "/deit_s_random")
    static = vitprune.apply(copy.deepcopy(dense), "star", prior=prior, macs=args.macs)
    images = torch.rand(args.batch, 3, 224, 224)
    static_macs = macs(static, images).mean
    adaptive, adaptive_macs, r_min = adaptive_at(dense, prior, static_macs, images)
    nets = {"unpatched": dense, "star static": static, "star adaptive": adaptive}
    gmacs = {
        "unpatched": macs(dense, images).mean / 1e9,
        "star static": static_macs / 1e9,
        "star adaptive": adaptive_macs / 1e9,
    }
    rows = speed_table(nets, [(args.batch, 2), (1, 20)], ["fp32"], args.rounds)
    for row in rows:
        row["gmacs"], row["macs_ratio"] = gmacs[row["model"]], gmacs[row["model"]] / gmacs["unpatched"]
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    notes = (
        f"adaptive r_min={r_min:.4f}; calibration {calibration.meta['seconds']} s on "
        f"{args.calibration_images} images (float32)"
    )
    print(save_results("star_cpu", "deit_small_patch16_224", rows, notes=notes))


if __name__ == "__main__":
    main()
