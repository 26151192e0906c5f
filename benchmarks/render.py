"""Render BENCHMARKS.md from the committed JSON in results/ (no hand-typed numbers), with the papers'
own ImageNet figures (papers.json) beside the tables of ours they compare with.

A ``vitprune sweep`` result (its ``sweep.json``, committed as ``results/<name>.json``) is rendered as
its Markdown table, and its plots are drawn from it into ``results/<name>/`` and linked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common import RESULTS

from vitprune.cli.report import table
from vitprune.sweep.files import markdown
from vitprune.sweep.plots import write_plots

ROOT = Path(__file__).parent.parent
PAPERS = Path(__file__).parent / "papers.json"

HEADER = """# Benchmarks

Rendered by `benchmarks/render.py` from `benchmarks/results/*.json`; rerun the command shown under
each table to reproduce it. MACs are multiply-accumulates (the papers' "GFLOPs"). Speed is measured
with random weights, all models of a table interleaved in one run (median of rounds), so ratios are
comparable within a table; absolute images/s depend on the machine named.

Acceptance figures (issue 2, DeiT-S 224, CPU fp32, batch 64): the patched model at zero reduction
keeps >= 97% of unpatched throughput; ToMe r=13 reaches >= 0.9 x its MACs ratio (>= 1.53x).

Sections headed **Reported by the paper, not measured by us** come from `benchmarks/papers.json`,
each with the paper and table it cites. {about}
"""


def columns(rows: list[dict]) -> list[str]:
    """Every key the rows use, in first-seen order, except nested configs."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(k for k, v in row.items() if not isinstance(v, dict)))
    return list(seen)


def machine_line(m: dict) -> str:
    threads = f"{m['threads']} thread" + ("" if m["threads"] == 1 else "s")
    return f"{m['device']}, {threads}, torch {m['torch']}, timm {m['timm']}, {m['date']}."


def section(data: dict) -> str:
    lines = [
        f"## {data['benchmark']}: {data['model']}",
        "",
        machine_line(data["machine"]),
        "",
        table(data["rows"], columns(data["rows"])),
        "",
        *([data["notes"], ""] if data.get("notes") else []),
        f"Reproduce: `.venv/bin/python {data['command']}`",
        "",
    ]
    return "\n".join(lines)


def link(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, as a Markdown link target."""
    return Path(os.path.relpath(path, root)).as_posix()


def sweep_section(name: str, data: dict, results: Path, root: Path) -> str:
    """A committed sweep: its table (with the command) and its plots, redrawn from the JSON."""
    plots = write_plots(results / name, data)
    lines = [
        f"## {name}: {data['model']} on {data['data']}",
        "",
        machine_line(data["machine"]),
        "",
        markdown(data),
        f"Committed as `{link(results / f'{name}.json', root)}` (the sweep's `sweep.json`); render.py "
        "draws the plots from it.",
        "",
        *[f"![{p.stem.replace('_', ' ')}]({link(p, root)})" for p in plots],
        "",
    ]
    return "\n".join(lines)


def paper_section(entry: dict) -> str:
    """One table of a paper's own figures, headed as such and naming its source."""
    lines = [
        f"### Reported by the paper, not measured by us: {entry['title']}",
        "",
        f"{entry['paper']}. Source: {entry['source']}.",
        "",
        table(entry["rows"], columns(entry["rows"])),
        "",
        *([entry["notes"], ""] if entry.get("notes") else []),
    ]
    return "\n".join(lines)


def render(results: Path, papers: dict, root: Path) -> str:
    """BENCHMARKS.md: our result tables in file order, each followed by the papers' tables that
    name it first in their ``beside`` list; papers' tables with none of theirs present come last."""
    loaded = [(path.stem, json.loads(path.read_text())) for path in sorted(results.glob("*.json"))]
    loaded = [(name, data) for name, data in loaded if "rows" in data and "machine" in data]
    names = [name for name, _ in loaded]
    homes: dict[str | None, list[dict]] = {}
    for entry in papers["tables"]:
        homes.setdefault(next((b for b in entry["beside"] if b in names), None), []).append(entry)
    parts = [HEADER.format(about=papers["about"])]
    for name, data in loaded:
        if data.get("benchmark") == "sweep":
            parts.append(sweep_section(name, data, results, root))
        else:
            parts.append(section(data))
        parts += [paper_section(entry) for entry in homes.get(name, [])]
    if None in homes:
        parts.append("## Papers' figures without a table of ours beside them yet\n")
        parts += [paper_section(entry) for entry in homes[None]]
    return "\n".join(parts)


def main() -> None:
    out = ROOT / "BENCHMARKS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(render(RESULTS, json.loads(PAPERS.read_text()), ROOT))
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
