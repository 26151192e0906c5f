"""Pareto plots of a sweep: top-1 accuracy (a segmenter's mean IoU) against GMACs and against measured
throughput."""

from __future__ import annotations

import textwrap
from pathlib import Path

from matplotlib.figure import Figure

import vitprune
from vitprune.methods.base import BASELINES
from vitprune.sweep.yardstick import score_key

GMACS_PNG, THROUGHPUT_PNG = "accuracy_vs_gmacs.png", "accuracy_vs_throughput.png"
MARKERS = "osD^vP<>Xh"
COLORS = [f"C{i}" for i in range(10)]  # matplotlib's default cycle, fixed per method across plots
GREYS = ["0.25", "0.45", "0.6"]
LABEL_CHARS = 80  # wrap axis labels longer than this


def label(method: str) -> str:
    """The legend name of ``method``: its summary's lead, e.g. ``SaiT (reconstructed)``."""
    return vitprune.methods().get(method, method).split(":")[0]


def style(method: str, i: int) -> dict:
    """Line style of the ``i``-th method: a colour and a solid line; the baselines (``resize``,
    ``random``, ``topk``) grey and dashed, so the methods stand out against their yardsticks."""
    if method in BASELINES:
        return {
            "marker": MARKERS[i % len(MARKERS)],
            "color": GREYS[i % len(GREYS)],
            "linestyle": "--",
            "linewidth": 1.2,
        }
    return {
        "marker": MARKERS[i % len(MARKERS)],
        "color": COLORS[i % len(COLORS)],
        "linestyle": "-",
        "linewidth": 1.5,
    }


def _points(rows: list[dict], x_of) -> dict[str, list[tuple[float, float]]]:
    """Finished cells per method as (x, score) pairs, joined in order of MACs target (so a noisy x
    such as throughput does not reorder a line); cells without an x are left out."""
    key = score_key(rows)
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        x = x_of(row)
        if row.get("status") == "ok" and x is not None:
            lines.setdefault(row["method"], []).append((row["macs_target"], x, row[key]))
    return {method: [(x, y) for _, x, y in sorted(points)] for method, points in lines.items()}


def _plot(lines: dict, order: list[str], xlabel: str, title: str, path: Path, ylabel: str) -> Path:
    fig = Figure(figsize=(7.5, 5.2))
    ax = fig.subplots()
    dense = lines.pop("dense", None)
    for method, points in lines.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, label=label(method), markersize=6, **style(method, order.index(method)))
    if dense:
        x, y = dense[0]
        ax.plot([x], [y], marker="*", color="black", markersize=16, linestyle="none", label="dense")
        ax.axhline(y, color="black", linewidth=0.7, linestyle=":")
        xs = [px for points in lines.values() for px, _ in points]
        right = not xs or x < (min(xs) + max(xs)) / 2  # label on the side away from the plot's edge
        ax.annotate(
            "dense",
            (x, y),
            textcoords="offset points",
            xytext=(10, 6) if right else (-10, 6),
            ha="left" if right else "right",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
    ax.set_xlabel(textwrap.fill(xlabel, LABEL_CHARS), fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    ax.set_title(textwrap.fill(title, LABEL_CHARS), fontsize=10)
    ax.tick_params(labelsize=9)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.06, y=0.08)
    ax.legend(title="method", fontsize=9, title_fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _threads(n: int | None) -> str:
    return "threads unknown" if n is None else f"{n} thread" + ("" if n == 1 else "s")


def write_plots(out: Path, payload: dict) -> list[Path]:
    """Write the plots the sweep has data for (no throughput plot without speed measurements)."""
    s = payload["settings"]
    images = f"first {s['limit']} {s['split']} images" if s.get("limit") else f"{s['split']} split"
    score = "mean IoU" if score_key(payload["rows"]) == "miou" else "top-1 accuracy"
    ylabel = f"{score} (%), {images}"
    title = f"{payload['model']} on {payload['data']}: every method applied as is, no fine-tuning"
    order = list(dict.fromkeys(row["method"] for row in payload["rows"] if row["method"] != "dense"))
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _plot(
            _points(payload["rows"], lambda r: r.get("gmacs")),
            order,
            "GMACs per image (from the token counts really used)",
            title,
            out / GMACS_PNG,
            ylabel,
        )
    ]
    throughput = _points(payload["rows"], lambda r: (r.get("speed") or {}).get("images_per_s"))
    if throughput:
        machine = payload.get("machine", {})
        paths.append(
            _plot(
                throughput,
                order,
                f"throughput (images/s at batch {s['batch']}, {machine.get('device', 'CPU')}, "
                f"{_threads(machine.get('threads'))}, fp32)",
                title,
                out / THROUGHPUT_PNG,
                ylabel,
            )
        )
    return paths
