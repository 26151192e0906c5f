"""Hugging Face ViT against timm's DeiT-S under the same token method, timed interleaved in one run.

    .venv/bin/python benchmarks/hf_speed.py --name hf_vs_timm_cpu tome:macs=0.6

A transformers ``ViTForImageClassification`` built at DeiT-S size (width 384, 12 layers, 6 heads, MLP
1536, 224 px, 16 px patches, 1000 classes; random weights, SDPA attention) and timm's
``deit_small_patch16_224`` each run dense and with the method. Every row's ``speedup`` is against
the dense model of its own library, timed in the same rounds; ``vs_timm`` divides the HF speedup by
timm's (1.0: the method pays off as well on HF as on timm).
"""

from __future__ import annotations

import argparse
import copy

import timm
import torch
from common import parse_config, save_results
from transformers import ViTConfig, ViTForImageClassification

import vitprune
from vitprune.measure import macs
from vitprune.measure.bench import speed_table

DEIT_S = dict(
    hidden_size=384,
    num_hidden_layers=12,
    num_attention_heads=6,
    intermediate_size=1536,
    image_size=224,
    patch_size=16,
    num_labels=1000,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="[label=]method[:key=value,...], e.g. tome:macs=0.6")
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--batches", default="64,1", help="batch sizes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    label, method, config = parse_config(args.config)
    torch.manual_seed(0)
    dense = {
        "timm": timm.create_model("deit_small_patch16_224").eval(),
        "hf": ViTForImageClassification(ViTConfig(**DEIT_S, attn_implementation="sdpa")).eval(),
    }
    nets = {}
    for lib, model in dense.items():
        nets[f"{lib} dense"] = model
        nets[f"{lib} {label}"] = vitprune.apply(copy.deepcopy(model), method, **config)
    x = torch.rand(8, 3, 224, 224)
    gmacs = {name: macs(m, x).mean / 1e9 for name, m in nets.items()}
    batches = [(int(b), 2 if int(b) > 1 else 20) for b in args.batches.split(",")]
    rows = speed_table(nets, batches, ["fp32"], args.rounds)
    ips = {(r["batch_size"], r["model"]): r["images_per_s"] for r in rows}
    for row in rows:
        lib = row["model"].split()[0]
        row["speedup"] = row["images_per_s"] / ips[(row["batch_size"], f"{lib} dense")]
        row["gmacs"] = gmacs[row["model"]]
        row["macs_ratio"] = gmacs[f"{lib} dense"] / gmacs[row["model"]]
    for row in rows:
        if row["model"].startswith("hf ") and row["model"] != "hf dense":
            timm_row = next(
                r for r in rows if r["batch_size"] == row["batch_size"] and r["model"] == f"timm {label}"
            )
            row["vs_timm"] = row["speedup"] / timm_row["speedup"]
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(save_results(args.name, "deit_small_patch16_224 / ViTForImageClassification (DeiT-S size)", rows))


if __name__ == "__main__":
    main()
