"""A sweep's files: ``sweep.json`` (written atomically after every cell), ``sweep.csv`` and ``sweep.md``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from vitprune.cli.report import table
from vitprune.files.atomic import json_bytes, write_bytes
from vitprune.sweep.yardstick import points_vs_resize, score_key, versus_heading

JSON_NAME, CSV_NAME, MD_NAME = "sweep.json", "sweep.csv", "sweep.md"
START_OVER = "use another --out or run without --resume to start over"
COLUMNS = [
    "method",
    "macs_target",
    "status",
    "setting",
    "top1",
    "top5",
    "miou",
    "pixel_acc",
    "fidelity",
    "n",
    "gmacs",
    "executed_gmacs",
    "macs_ratio",
    "images_per_s",
    "speedup",
    "latency_ms",
    "latency_speedup",
    "vs_resize",
    "latency_vs_resize",
]


def read_payload(out: Path) -> dict | None:
    """The sweep saved in ``out``, or ``None`` when there is none yet; ``ValueError`` if it is unreadable."""
    path = out / JSON_NAME
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read (truncated or corrupt?): {err}; {START_OVER}") from err
    if not isinstance(payload, dict) or not {"settings", "rows"} <= payload.keys():
        raise ValueError(f"{path} is not a sweep's results file; {START_OVER}")
    return payload


def write_payload(out: Path, payload: dict) -> Path:
    """Replace ``out/sweep.json`` atomically (temporary file, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / JSON_NAME
    write_bytes(path, json_bytes(payload))
    return path


def flat_rows(payload: dict) -> list[dict]:
    """One flat dict per cell: the speed sub-dict's numbers become columns of their own."""
    rows = []
    for row in payload["rows"]:
        flat = {k: v for k, v in row.items() if k != "speed"}
        flat.update({k: v for k, v in (row.get("speed") or {}).items() if k in COLUMNS})
        rows.append(flat)
    return rows


def present_columns(rows: list[dict], shown=COLUMNS) -> list[str]:
    """The columns of ``shown`` that at least one row has, in ``shown``'s order."""
    return [c for c in shown if any(c in r for r in rows)]


def write_tables(out: Path, payload: dict) -> tuple[Path, Path]:
    """Write ``sweep.csv`` and ``sweep.md`` (see :func:`markdown`)."""
    rows = flat_rows(payload)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, present_columns(rows), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = out / CSV_NAME, out / MD_NAME
    write_bytes(csv_path, buffer.getvalue().encode())
    write_bytes(md_path, markdown(payload).encode())
    return csv_path, md_path


def markdown(payload: dict) -> str:
    """The sweep as Markdown: what was measured, the table, any notes and the command."""
    rows = flat_rows(payload)
    text = f"{describe(payload)}\n\n{table(rows, present_columns(rows))}\n"
    versus = points_vs_resize(rows)
    if versus:
        text += f"\n{versus_heading(rows)}\n\n{table(versus)}\n"
    failed = [r for r in rows if r.get("error")]
    unreachable = [
        f"{r['method']} at {r['macs_target']:g}: {r['error']}" for r in failed if r["status"] != "refused"
    ]
    if unreachable:
        text += "\nUnreachable targets: " + "; ".join(unreachable) + ".\n"
    refused = dict.fromkeys(f"{r['method']}: {r['error']}" for r in failed if r["status"] == "refused")
    if refused:
        text += "\nRefused for this model: " + "; ".join(refused) + ".\n"
    if payload.get("notes"):
        text += f"\n{payload['notes']}\n"
    return text + f"\nReproduce: `{payload['command']}`\n"


def describe(payload: dict) -> str:
    """One line saying what the table measured."""
    s = payload["settings"]
    images = (
        f"the first {s['limit']} {s['split']} images" if s.get("limit") else f"the full {s['split']} split"
    )
    scored = (
        "mean IoU and pixel accuracy (%), fidelity (mean cosine of each restored patch "
        "feature to the dense model's)"
        if score_key(payload["rows"]) == "miou"
        else "top-1/top-5 (%)"
    )
    line = (
        f"Sweep of {payload['model']} on {payload['data']}, every method applied as it is (no fine-tuning): "
        f"{scored} on {images}, GMACs per image from the token counts really used"
    )
    if s.get("speed"):
        m = payload.get("machine", {})
        line += (
            f"; images/s at batch {s['batch']} and batch-1 latency (ms), fp32 on {m.get('device', '?')} "
            f"with {m.get('threads', '?')} torch thread(s), each target's methods interleaved with dense and "
            "resize in one run"
        )
    return line + "."
