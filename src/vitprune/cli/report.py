"""Plain-text rendering of command results for people (``--json`` gives the same data to scripts)."""

from __future__ import annotations


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts sharing keys)."""
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def print_table(result: dict) -> None:
    """Scalars as ``key: value`` lines, then any list of row dicts as a table."""
    for key, value in result.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            print(table(value))
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {_fmt(v)}")
        elif isinstance(value, list):
            print(f"{key}: [{', '.join(_fmt(v) for v in value)}]")
        else:
            print(f"{key}: {_fmt(value)}")
