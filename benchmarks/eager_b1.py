"""Batch 1, eager (issue 33): each token method's aten calls per forward and its wall time against dense,
and against the ``resize`` baseline where vitprune has it, every model of one architecture timed
interleaved in the same rounds.

    .venv/bin/python benchmarks/eager_b1.py --name eager_b1_cpu
    .venv/bin/python benchmarks/eager_b1.py --name eager_b1_tome --models fmnist-vit-196=0.5 tome r8=tome:r=8

``--models`` lists ``name=target``: a zoo or timm name (timm: random weights) and the MACs the methods
keep there, as a fraction of dense. Each positional spec is ``[label=]method[:key=value,...]`` (as in
speed.py); a spec without options runs at the model's target: ``macs=target``, or for STAR (which
needs a calibration for ``macs=``) alpha 1 with one keep rate for every block solved for the target.
Default specs: tome, evit, ppt, star, sait, and resize when it is registered.

Rows, per model: ``calls`` (aten calls of one forward, nested ones included: ``vitprune.measure.calls``),
``extra_calls_per_block`` (more than dense, per reducing block), ``ms`` (median over ``--rounds``
of the mean forward time of a sample lasting at least ``--sample-s``), ``speedup`` against dense and
``vs_resize`` against resize, and ``macs_ratio``. Times need a quiet machine; calls are exact anywhere.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import notes, parse_config, save_results
from deploy import runs_for

import vitprune
from vitprune.data.transforms import resolve_input_size
from vitprune.measure import macs
from vitprune.measure.bench import compare
from vitprune.measure.calls import aten_calls
from vitprune.methods.star import STAR
from vitprune.methods.target import bisect, method_macs
from vitprune.models.load import load_model
from vitprune.vit import describe

MODELS = "deit_tiny_patch16_224=0.6,deit_small_patch16_224=0.6,fmnist-vit-196=0.5"
METHODS = ("tome", "evit", "ppt", "star", "sait", "resize")


def star_rates(model, target: float) -> list[float]:
    """One keep rate for every block that puts alpha-1 STAR at ``target`` x dense MACs."""
    spec = describe(model)
    dense = method_macs(STAR([1.0] * spec.depth, None, 1.0), spec)
    rate = bisect(lambda r: method_macs(STAR([r] * spec.depth, None, 1.0), spec), 0.05, 1.0, target * dense)
    return [rate] * spec.depth


def at_target(model, method: str, config: dict, target: float) -> dict:
    """``config``, or where it is empty the setting that meets ``target``."""
    if config:
        return config
    if method == "star":
        return {"alpha": 1.0, "rates": star_rates(model, target)}
    return {"macs": target}


def reducing_blocks(model) -> int | None:
    """Blocks that reduce tokens (None for a method without any, such as resize)."""
    ctx = getattr(model, "vitprune", None)
    if ctx is None:
        return None
    depth = len(ctx.family.blocks(model))
    return sum(ctx.method.active(i) for i in range(depth)) or None


def table(name: str, target: float, specs: list[str], rounds: int, sample_s: float) -> list[dict]:
    dense = vitprune.remove(load_model(name))  # a zoo model may come with its method: dense here
    nets = {"dense": dense}
    for label, method, config in map(parse_config, specs):
        nets[label] = vitprune.apply(copy.deepcopy(dense), method, **at_target(dense, method, config, target))
    size = resolve_input_size(dense)
    x = torch.rand(1, *size)
    calls = {label: sum(aten_calls(m, x).values()) for label, m in nets.items()}
    gmacs = {label: macs(m, torch.rand(8, *size)).mean / 1e9 for label, m in nets.items()}
    ips = compare(nets, 1, size, rounds=rounds, runs=runs_for(dense, 1, x, sample_s))
    rows = []
    for label, model in nets.items():
        blocks = reducing_blocks(model)
        row = {
            "model": name,
            "method": label,
            "calls": calls[label],
            "extra_calls_per_block": None if blocks is None else (calls[label] - calls["dense"]) / blocks,
            "reducing_blocks": blocks,
            "ms": 1000 / ips[label],
            "speedup": ips[label] / ips["dense"],
            "vs_resize": ips[label] / ips["resize"] if "resize" in ips else None,
            "macs_ratio": gmacs[label] / gmacs["dense"],
        }
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", help="[label=]method[:key=value,...] (default: all at the target)")
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--models", default=MODELS, help=f"name=target,... (default {MODELS})")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds; the median (default 9)")
    ap.add_argument("--sample-s", type=float, default=0.25, help="least seconds a timing sample lasts (0.25)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--notes", help="what the table shows, printed above it in BENCHMARKS.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    specs = args.specs or [m for m in METHODS if m in vitprune.methods()]
    rows = []
    for entry in args.models.split(","):
        name, _, target = entry.rpartition("=")
        rows += table(name, float(target), specs, args.rounds, args.sample_s)
    print(save_results(args.name, args.models, rows, threads=args.threads, **notes(args.notes)))


if __name__ == "__main__":
    main()
