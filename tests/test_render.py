"""BENCHMARKS.md rendering: the papers' figures sit beside our tables, marked as theirs with a source;
a committed sweep is rendered as its table plus plots drawn from its JSON."""

import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
PAPERS = json.loads((BENCHMARKS / "papers.json").read_text())


@pytest.fixture
def render(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("render")


def ours(name: str) -> dict:
    return {
        "benchmark": name,
        "model": "deit_small_patch16_224",
        "command": f"benchmarks/speed.py --name {name}",
        "machine": {"device": "CPU: test", "threads": 2, "torch": "2", "timm": "1", "date": "2026-01-01"},
        "rows": [{"model": "unpatched", "images_per_s": 15.0, "nested": {"r": 1}}],
    }


def sweep_payload() -> dict:
    settings = {"limit": 16, "split": "test", "speed": True, "batch": 64}
    speed = {"images_per_s": 500.0, "speedup": 1.0, "latency_ms": 4.0, "latency_speedup": 1.0}
    rows = [
        {"method": "dense", "macs_target": 1.0, "status": "ok", "setting": "", "top1": 90.0, "top5": 99.0,
         "n": 16, "gmacs": 0.072, "macs_ratio": 1.0, "speed": speed},
        {"method": "tome", "macs_target": 0.5, "status": "ok", "setting": "r=4", "top1": 88.0, "top5": 99.0,
         "n": 16, "gmacs": 0.036, "macs_ratio": 0.5, "speed": {**speed, "images_per_s": 700.0}},
        {"method": "ppt", "macs_target": 0.5, "status": "unreachable", "error": "out of reach"},
    ]  # fmt: skip
    return {
        "benchmark": "sweep",
        "model": "fmnist-vit",
        "data": "fashion-mnist",
        "command": "vitprune sweep --model fmnist-vit --out sweep",
        "settings": settings,
        "machine": {"device": "CPU: test", "threads": 1, "torch": "2", "timm": "1", "date": "2026-01-01"},
        "notes": "",
        "rows": rows,
    }


def test_papers_file_names_its_sources():
    assert PAPERS["about"]
    for entry in PAPERS["tables"]:
        assert entry["title"] and entry["paper"] and entry["source"] and entry["beside"]
        assert entry["rows"] and all(isinstance(row, dict) and row for row in entry["rows"])
    assert {e["method"] for e in PAPERS["tables"]} >= {"ToMe", "PPT", "STAR", "SaiT", "DIMAP"}


def test_papers_figures_beside_ours_and_the_rest_last(render, tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "ppt_cpu.json").write_text(json.dumps(ours("ppt_cpu")))
    (results / "notes.json").write_text(json.dumps({"not": "a result"}))
    text = render.render(results, PAPERS, tmp_path)

    ppt = next(e for e in PAPERS["tables"] if e["method"] == "PPT")
    ours_at = text.index("## ppt_cpu: deit_small_patch16_224")
    theirs_at = text.index(f"### Reported by the paper, not measured by us: {ppt['title']}")
    rest_at = text.index("## Papers' figures without a table of ours beside them yet")
    assert ours_at < theirs_at < rest_at
    assert f"{ppt['paper']}. Source: {ppt['source']}." in text
    assert "Reproduce: `.venv/bin/python benchmarks/speed.py --name ppt_cpu`" in text
    assert "nested" not in text
    for entry in PAPERS["tables"]:  # every paper table appears exactly once
        assert text.count(f"not measured by us: {entry['title']}\n") == 1
    dimap = text.index("not measured by us: DIMAP: Table 1")
    assert dimap > rest_at  # no DIMAP result of ours here


def test_sweep_rendered_with_plots_drawn_from_its_json(render, tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "sweep_fmnist_vit.json").write_text(json.dumps(sweep_payload()))
    text = render.render(results, PAPERS, tmp_path)

    assert "## sweep_fmnist_vit: fmnist-vit on fashion-mnist" in text
    assert "| tome | 0.5 | ok | r=4 | 88 |" in text
    assert "Unreachable targets: ppt at 0.5: out of reach." in text
    assert "Reproduce: `vitprune sweep --model fmnist-vit --out sweep`" in text
    for png in ("accuracy_vs_gmacs.png", "accuracy_vs_throughput.png"):
        assert f"](benchmarks/results/sweep_fmnist_vit/{png})" in text
        assert (results / "sweep_fmnist_vit" / png).stat().st_size > 10_000
    sait = next(e for e in PAPERS["tables"] if e["method"] == "SaiT")
    assert text.index("## sweep_fmnist_vit") < text.index(f"not measured by us: {sait['title']}")
