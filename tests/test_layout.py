"""The package's layout: no import circles among its modules, and the arrows the README's "Layout"
section draws. Imports are read from the source (function-local ones included), nothing is run."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# What a method may import: the token machinery, the model description, its siblings, the MACs
# formula its macs= solver uses, and the calibration loader (STAR's prior arrives as a path or tensors).
METHODS_MAY_IMPORT = (
    "vitprune.tokens",
    "vitprune.vit",
    "vitprune.methods",
    "vitprune.measure.formula",
    "vitprune.calibrate.artifact",
)
NEVER_UNDER_METHODS = ("vitprune.train", "vitprune.zoo", "vitprune.models", "vitprune.cli")
TRAIN_FROM_OUTSIDE = ("vitprune.train", "vitprune.train.cli")  # the public API and the verb


def module_names() -> dict[str, Path]:
    """Every module under ``src/vitprune`` by dotted name (a package by its own name)."""
    names = {}
    for path in sorted((SRC / "vitprune").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known) -> list[str]:
    """The vitprune modules one import statement runs (``from pkg import sub``: ``pkg`` and ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
    # ``from pkg import sub`` runs ``pkg/__init__.py`` before it reaches ``pkg.sub``: both are imported.
    return [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]


def import_graph() -> dict[str, set[str]]:
    """Module → the vitprune modules it imports anywhere in its source."""
    known = module_names()
    graph = {}
    for module, path in known.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = imported(node, module, path.name == "__init__.py", known)
                deps.update(name for name in names if name in known and name != module)
        graph[module] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that ends where it starts, or ``None``."""
    done, path = set(), []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for dep in sorted(graph[node]):
            if dep in path:
                return path[path.index(dep) :] + [dep]
            if dep not in done and (cycle := visit(dep)):
                return cycle
        path.pop()
        done.add(node)
        return None

    return next((c for node in sorted(graph) if node not in done and (c := visit(node))), None)


def within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def imports_outside(graph: dict[str, set[str]], packages, allowed) -> dict[str, list[str]]:
    """Modules under ``packages`` → what they import from outside ``allowed`` (only those that do)."""
    found = {m: sorted(d for d in deps if not within(d, allowed)) for m, deps in graph.items()}
    return {m: deps for m, deps in found.items() if deps and within(m, packages)}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_graph_sees_every_kind_of_import(graph):
    assert "vitprune.sweep.cli" in graph["vitprune.cli.main"]  # function-local
    assert "vitprune.sweep.measure" in graph["vitprune.sweep.run"]  # from package import module
    assert "vitprune.calibrate.artifact" in graph["vitprune.methods.star"]


def test_find_cycle_reports_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_methods_import_only_the_token_core(graph):
    assert imports_outside(graph, ["vitprune.methods"], METHODS_MAY_IMPORT) == {}


def test_methods_reach_no_training_zoo_model_loading_or_cli(graph):
    todo = [m for m in graph if within(m, ["vitprune.methods"])]
    reached = set(todo)
    while todo:
        for dep in graph[todo.pop()] - reached:
            reached.add(dep)
            todo.append(dep)
    assert sorted(m for m in reached if within(m, NEVER_UNDER_METHODS)) == []


def test_files_build_on_nothing_else(graph):
    assert imports_outside(graph, ["vitprune.files"], ["vitprune.files"]) == {}


def test_train_internals_stay_inside_train(graph):
    reaching_in = {
        m: sorted(d for d in deps if within(d, ["vitprune.train"]) and d not in TRAIN_FROM_OUTSIDE)
        for m, deps in graph.items()
        if not within(m, ["vitprune.train"])
    }
    assert {m: deps for m, deps in reaching_in.items() if deps} == {}


ROOT = SRC.parent
OUTSIDE = ("../" + "shared", "shared/" + "design")  # split so this file does not name them itself


def test_no_file_names_the_developers_notes_outside_the_repository():
    """A user's clone or installed package has only the repository: no file in it may point past it
    (every file git tracks, CI's script included; the package's own folders where git is absent)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout:
        files = [ROOT / name for name in listed.stdout.splitlines()]
    else:
        files = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
        for folder in ("src", "docs", "benchmarks", "tools", "tests"):
            files += [p for p in (ROOT / folder).rglob("*") if p.is_file()]
    naming = [str(p.relative_to(ROOT)) for p in files if p.is_file() and any(s in _text(p) for s in OUTSIDE)]
    assert naming == []


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def test_docs_the_readme_links_exist():
    linked = set(re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text()))
    assert linked and all((ROOT / path).is_file() for path in linked), sorted(linked)
