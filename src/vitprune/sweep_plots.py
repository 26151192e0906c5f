"""Pareto plots of a sweep: top-1 accuracy against GMACs and against measured throughput."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

GMACS_PNG, THROUGHPUT_PNG = "accuracy_vs_gmacs.png", "accuracy_vs_throughput.png"
MARKERS = "osD^vP<>Xh"


def _points(rows: list[dict], x_of) -> dict[str, list[tuple[float, float]]]:
    """Finished cells per method as (x, top-1) pairs, joined in order of MACs target (so a noisy x
    such as throughput does not reorder a line); cells without an x are left out."""
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        x = x_of(row)
        if row.get("status") == "ok" and x is not None:
            lines.setdefault(row["method"], []).append((row["macs_target"], x, row["top1"]))
    return {method: [(x, y) for _, x, y in sorted(points)] for method, points in lines.items()}


def _plot(lines: dict, xlabel: str, title: str, path: Path, ylabel: str) -> Path:
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    dense = lines.pop("dense", None)
    for i, (method, points) in enumerate(sorted(lines.items())):
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], label=method, linewidth=1.5, markersize=5)
    if dense:
        x, y = dense[0]
        ax.plot([x], [y], marker="*", color="black", markersize=15, linestyle="none", label="dense")
        ax.axhline(y, color="black", linewidth=0.7, linestyle=":")
        ax.annotate("dense", (x, y), textcoords="offset points", xytext=(-8, 8), ha="right", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(title="method", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _threads(n: int | None) -> str:
    return "threads unknown" if n is None else f"{n} thread" + ("" if n == 1 else "s")


def write_plots(out: Path, payload: dict) -> list[Path]:
    """Write the plots the sweep has data for (no throughput plot without speed measurements)."""
    s = payload["settings"]
    images = f"first {s['limit']} {s['split']} images" if s.get("limit") else f"{s['split']} split"
    ylabel = f"top-1 accuracy (%), {images}"
    title = f"{payload['model']} on {payload['data']}"
    paths = [
        _plot(
            _points(payload["rows"], lambda r: r.get("gmacs")),
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
                f"throughput (images/s, batch {s['batch']}, {machine.get('device', 'CPU')}, "
                f"{_threads(machine.get('threads'))}, fp32)",
                title,
                out / THROUGHPUT_PNG,
                ylabel,
            )
        )
    return paths
