"""Speed in deployment: each token method against the dense model run the same way, eager and
``torch.compile``d, at small and large batch (issue 17).

    .venv/bin/python benchmarks/deploy.py --name deploy_fmnist_cpu --model fmnist-vit --batch-sizes 1,8,64
    .venv/bin/python benchmarks/deploy.py --name deploy_deit_s_cpu --model deit_small_patch16_224 \\
        --batch-sizes 1,64

Every method sits at its -37...41% MACs setting (ToMe and EViT at 0.6x, PPT at 0.63x, STAR at 0.6x:
alpha 1 with one keep rate solved for the target, since a random-weight model has no calibration;
on fmnist-vit PPT twice: in every block, the accurate setting there, and ``ppt-paper`` in blocks 3, 6, 9),
and ToMe at r=0 shows what the patching alone costs. For each (batch size, mode) all models are
timed interleaved (median of 9 rounds, each sample at least 0.25 s of batches); compiled models use
``torch.compile(fullgraph=True)``, one compile per model and batch size; mode ``compiled-cpp`` adds
Inductor's C++ wrapper (``options={"cpp_wrapper": True}``), which calls the kernels from C++ rather
than Python. Rows give ms per batch, images/s, the speedup against dense in the same mode,
efficiency = speedup / MACs ratio (1.0: every MAC saved turned into speed), and ``vs_resize``: the
method's speed as a fraction of the ``resize`` baseline's at its MACs (the dense model on the input
resized to the nearest patch grid: the limit a token method can reach there), timed in the same
rounds; the baselines ``resize``, ``random`` and ``topk`` (0.6x) are rows of their own.
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import torch
from common import notes, save_results

import vitprune
import vitprune.tokens.patch as token_patch
from vitprune.data.transforms import resolve_input_size
from vitprune.measure import macs
from vitprune.measure.bench import compare
from vitprune.methods.star import STAR
from vitprune.methods.target import bisect, method_macs
from vitprune.models.load import load_model
from vitprune.sweep.yardstick import resize_twin
from vitprune.vit import describe

TARGET = 0.6
SAMPLE_S = 0.25  # a timing sample lasts at least this long: tens of batch-1 forwards on a small model
# compiled: Inductor's default Python wrapper; compiled-cpp: its C++ wrapper (kernels called from C++).
COMPILE_OPTIONS = {"compiled": None, "compiled-cpp": {"cpp_wrapper": True}}


def star_rate(model) -> float:
    """One keep rate for every block that puts alpha-1 STAR at TARGET x dense MACs."""
    spec = describe(model)
    dense = method_macs(STAR([1.0] * spec.depth, None, 1.0), spec)
    return bisect(lambda r: method_macs(STAR([r] * spec.depth, None, 1.0), spec), 0.5, 1.0, TARGET * dense)


def configs(model, name: str) -> dict[str, tuple[str, dict]]:
    ppt = {"ppt": ("ppt", {"macs": 0.63, "threshold": 7e-5})}
    if name == "fmnist-vit":
        # 49 patches: the setting ppt_fmnist measured best (every block, 1.5e-2), and the paper's
        # schedule (blocks 3, 6, 9 at the default threshold), which removes tokens in 3 blocks, not 12.
        ppt = {
            "ppt": ("ppt", {"macs": 0.63, "layers": tuple(range(len(model.blocks))), "threshold": 1.5e-2}),
            "ppt-paper": ("ppt", {"macs": 0.63}),
        }
    return {
        "r0": ("tome", {"r": 0}),
        "tome": ("tome", {"macs": TARGET}),
        "evit": ("evit", {"macs": TARGET}),
        **ppt,
        "star": ("star", {"alpha": 1.0, "rates": [star_rate(model)] * len(model.blocks)}),
        "resize": ("resize", {"macs": TARGET}),
        "random": ("random", {"macs": TARGET}),
        "topk": ("topk", {"macs": TARGET}),
    }


def add_resize_twins(nets: dict[str, torch.nn.Module]) -> dict[str, str]:
    """For every token method in ``nets``, the label of the ``resize`` baseline at its MACs (the
    nearest patch grid), added to ``nets`` when no net of that grid is there yet: the speed limit each
    method is read against (``vs_resize``), timed interleaved with it."""
    by_grid = {m.vitprune.method.size: label for label, m in nets.items() if _method(m) == "resize"}
    twins = {}
    for label, model in list(nets.items()):
        twin = resize_twin(nets["dense"], model) if label != "r0" else None
        if twin is None:
            continue
        size = twin.vitprune.method.size
        if size not in by_grid:
            by_grid[size] = f"resize-{size[0]}x{size[1]}"
            nets[by_grid[size]] = twin
        twins[label] = by_grid[size]
    return twins


def _method(model: torch.nn.Module) -> str | None:
    return model.vitprune.method.name if token_patch.is_patched(model) else None


def build_nets(name: str, only: list[str] | None = None) -> dict[str, torch.nn.Module]:
    """The dense model ``name`` and each configuration of :func:`configs` (those in ``only`` when given),
    every one a deep copy (the same memory layout for all)."""
    dense = copy.deepcopy(vitprune.remove(load_model(name)))
    nets = {"dense": dense}
    for label, (method, config) in configs(dense, name).items():
        if only is None or label in only:
            nets[label] = vitprune.apply(copy.deepcopy(dense), method, **config)
    return nets


def runs_for(dense, batch: int, x: torch.Tensor, sample_s: float = SAMPLE_S) -> int:
    """Batches per timing sample: enough that one sample of the dense model lasts ``sample_s``."""
    images = torch.rand(batch, *x.shape[1:])
    with torch.inference_mode():
        dense(images)
        start = time.perf_counter()
        for _ in range(3):
            dense(images)
    return min(200, max(2, math.ceil(sample_s * 3 / (time.perf_counter() - start))))


def step_rows(
    nets, twins, gmacs, batch: int, mode: str, rounds: int, sample_s: float = SAMPLE_S
) -> list[dict]:
    """One (batch size, mode) step: every net timed interleaved (compiled first for a compiled mode),
    one row each with its speedup against dense and, for a token method, ``vs_resize``."""
    x = torch.rand(batch, *resolve_input_size(nets["dense"]))
    timed, compile_s = nets, {}
    if mode in COMPILE_OPTIONS:
        torch._dynamo.reset()
        options = COMPILE_OPTIONS[mode]
        timed = {
            label: torch.compile(m, fullgraph=True, dynamic=False, options=options)
            for label, m in nets.items()
        }
        for label, m in timed.items():
            start = time.perf_counter()
            with torch.inference_mode():
                m(x)
            compile_s[label] = time.perf_counter() - start
    ips = compare(timed, batch, rounds=rounds, runs=runs_for(timed["dense"], batch, x, sample_s))
    rows = []
    for label, value in ips.items():
        ratio = gmacs["dense"] / gmacs[label]
        row = {
            "model": label,
            "mode": mode,
            "batch_size": batch,
            "ms_per_batch": 1000 * batch / value,
            "images_per_s": value,
            "speedup": value / ips["dense"],
            "macs_ratio": ratio,
            "efficiency": value / ips["dense"] / ratio,
            "gmacs": gmacs[label],
        }
        if label in twins:  # speed as a fraction of the dense model on a smaller input, same MACs
            row["vs_resize"] = value / ips[twins[label]]
        if compile_s:
            row["compile_s"] = compile_s[label]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--model", default="fmnist-vit", help="zoo or timm name (timm: random weights)")
    ap.add_argument("--batch-sizes", default="1,8,64")
    ap.add_argument("--modes", default="eager,compiled,compiled-cpp")
    ap.add_argument("--methods", help="rows timed beside dense, e.g. ppt,tome (default: all)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--notes", help="what the table shows, printed above it in BENCHMARKS.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = build_nets(args.model, args.methods.split(",") if args.methods else None)
    twins = add_resize_twins(nets)
    x = torch.rand(8, *resolve_input_size(nets["dense"]))
    gmacs = {label: macs(m, x).mean / 1e9 for label, m in nets.items()}
    rows = []
    for batch in map(int, args.batch_sizes.split(",")):
        for mode in args.modes.split(","):
            for row in step_rows(nets, twins, gmacs, batch, mode, args.rounds):
                rows.append(row)
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(save_results(args.name, args.model, rows, threads=args.threads, **notes(args.notes)))


if __name__ == "__main__":
    main()
