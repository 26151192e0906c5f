"""Plain words on a speed table: where a reduced model is slower than dense, and from which batch size
it wins (the measured break-even). FLOPs saved do not always turn into speed, and we say so."""

from __future__ import annotations


def break_even(rows: list[dict], name: str) -> dict:
    """For model ``name`` in ``speed_table`` rows (``speedup`` against the reference of the same run),
    per precision: the batch sizes where it is slower, and the smallest measured batch size from which
    it is at least as fast at every larger measured size (``None`` if never)."""
    verdicts = {}
    for precision in sorted({r["precision"] for r in rows}):
        mine = (r for r in rows if r["model"] == name and r["precision"] == precision)
        ours = sorted(mine, key=lambda r: r["batch_size"])
        slower = [r["batch_size"] for r in ours if r["speedup"] < 1.0]
        winning = [r["batch_size"] for r in ours if r["batch_size"] > max(slower, default=0)]
        threshold = min(winning, default=None)
        verdicts[precision] = {
            "slower_than_dense_at": slower,
            "break_even_batch": threshold,
            "says": _sentence(name, ours, slower, threshold),
        }
    return verdicts


def _sentence(name: str, ours: list[dict], slower: list[int], threshold: int | None) -> str:
    if not slower:
        return f"{name} is at least as fast as dense at every measured batch size"
    worst = min(ours, key=lambda r: r["speedup"])
    sizes = ", ".join(map(str, slower))
    where = f"slower than dense at batch {sizes} ({worst['speedup']:.2f}x at {worst['batch_size']})"
    if threshold is None:
        return f"{name} is {where}: no measured batch size makes it faster"
    return f"{name} is {where}; faster from batch {threshold} on (measured break-even)"
