"""Render BENCHMARKS.md from the committed JSON in results/ (no hand-typed numbers)."""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS

from vitprune.report import table

HEADER = """# Benchmarks

Rendered by `benchmarks/render.py` from `benchmarks/results/*.json`; rerun the command shown under
each table to reproduce it. MACs are multiply-accumulates (the papers' "GFLOPs"). Speed is measured
with random weights, all models of a table interleaved in one run (median of rounds), so ratios are
comparable within a table; absolute images/s depend on the machine named.

Acceptance figures (issue 2, DeiT-S 224, CPU fp32, batch 64): the patched model at zero reduction
keeps >= 97% of unpatched throughput; ToMe r=13 reaches >= 0.9 x its MACs ratio (>= 1.53x).
"""


def columns(rows: list[dict]) -> list[str]:
    """Every key the rows use, in first-seen order, except nested configs."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(k for k, v in row.items() if not isinstance(v, dict)))
    return list(seen)


def section(data: dict) -> str:
    m = data["machine"]
    lines = [
        f"## {data['benchmark']}: {data['model']}",
        "",
        f"{m['device']}, {m['threads']} threads, torch {m['torch']}, timm {m['timm']}, {m['date']}.",
        "",
        table(data["rows"], columns(data["rows"])),
        "",
        *([data["notes"], ""] if data.get("notes") else []),
        f"Reproduce: `.venv/bin/python {data['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parts = [HEADER]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if "rows" in data and "machine" in data:
            parts.append(section(data))
    out = Path(__file__).parent.parent / "BENCHMARKS.md"
    out.write_text("\n".join(parts))
    print(out)


if __name__ == "__main__":
    main()
