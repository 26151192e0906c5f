"""Where a compiled forward's time goes: dense and each token method, kernel by kernel (issue 17).

    .venv/bin/python benchmarks/profile_deploy.py --name profile_fmnist_b1_cpu --model fmnist-vit --batch 1

Each model of ``benchmarks/deploy.py`` is compiled (``fullgraph=True``) with Inductor's per-kernel
profiling on, run ``--runs`` times under ``torch.profiler``, and its time per forward split into:
``linear_ms`` (matrix multiplies), ``attention_ms`` (fused SDPA), ``fused_ms`` (Inductor's generated
kernels: norms, GELU, residuals, and the methods' scoring, matching, gathers), ``other_ops_ms`` (the
remaining library ops: sorts, top-k, scatters) and ``overhead_ms`` (the rest of the wall time: guards,
the graph's Python wrapper, launching). ``kernels`` counts the kernel calls per forward. The
``top`` field of the JSON lists each model's costliest kernels. Time a model with ``deploy.py``;
this script says why it takes that long.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
import torch._inductor.config as inductor_config
from common import notes, save_results
from deploy import build_nets
from torch.profiler import ProfilerActivity, profile

from vitprune.data.transforms import resolve_input_size

WRAPPERS = ("Torch-Compiled Region", "CompiledFunction", "## ", "Call CompiledFxGraph", "TorchDynamo")
TOP = 8


def kind(name: str) -> str:
    """The column an event's self time goes to."""
    if "cpp_fused" in name or name.startswith("graph_"):
        return "fused_ms"
    if "scaled_dot_product" in name:
        return "attention_ms"
    if any(k in name for k in ("addmm", "mm", "linear", "matmul", "bmm")):
        return "linear_ms"
    return "other_ops_ms"


def split_time(model, x: torch.Tensor, runs: int) -> tuple[dict, list]:
    """Per-forward ms by kind, kernel count, wall ms, and the costliest kernels."""
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        start = time.perf_counter()
        for _ in range(runs):
            model(x)
        wall = (time.perf_counter() - start) * 1000 / runs
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(x)
    totals, kernels, top = defaultdict(float), 0, []
    for event in prof.key_averages():
        if (
            event.key.startswith(WRAPPERS)
            or event.key.startswith("aten::")
            and event.self_cpu_time_total == 0
        ):
            continue
        ms = event.self_cpu_time_total / 1000 / runs
        if ms <= 0:
            continue
        totals[kind(event.key)] += ms
        kernels += event.count / runs
        top.append((ms, event.key[:80], event.count / runs))
    row = {"ms_per_forward": wall, "kernels": kernels}
    for column in ("linear_ms", "attention_ms", "fused_ms", "other_ops_ms"):
        row[column] = totals[column]
    row["overhead_ms"] = max(0.0, wall - sum(totals.values()))
    top = [{"ms": ms, "kernel": name, "calls": calls} for ms, name, calls in sorted(top, reverse=True)[:TOP]]
    return row, top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--model", default="fmnist-vit", help="zoo or timm name (timm: random weights)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--methods", help="rows profiled beside dense, e.g. ppt,tome (default: all)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpp-wrapper", action="store_true", help="compile with Inductor's C++ wrapper")
    ap.add_argument("--notes", help="what the table shows, printed above it in BENCHMARKS.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    inductor_config.cpp.enable_kernel_profile = True
    torch.manual_seed(0)
    nets = build_nets(args.model, args.methods.split(",") if args.methods else None)
    x = torch.rand(args.batch, *resolve_input_size(nets["dense"]))
    rows, tops = [], {}
    for label, net in nets.items():
        torch._dynamo.reset()
        options = {"cpp_wrapper": True} if args.cpp_wrapper else None
        compiled = torch.compile(net, fullgraph=True, dynamic=False, options=options)
        row, tops[label] = split_time(compiled, x, args.runs)
        rows.append({"model": label, "batch_size": args.batch, "cpp_wrapper": args.cpp_wrapper, **row})
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    print(save_results(args.name, args.model, rows, threads=args.threads, top=tops, **notes(args.notes)))


if __name__ == "__main__":
    main()
