"""`vitprune bench`'s plain words: where a method loses to dense and the measured break-even batch."""

from vitprune.measure.verdict import break_even


def _rows(speedups: dict[int, float]) -> list[dict]:
    return [
        {"model": "tome", "precision": "fp32", "batch_size": b, "speedup": s} for b, s in speedups.items()
    ]


def test_break_even_is_the_first_batch_size_from_which_the_method_always_wins():
    verdict = break_even(_rows({1: 0.7, 8: 1.1, 16: 0.95, 64: 1.4}), "tome")["fp32"]
    assert verdict["slower_than_dense_at"] == [1, 16] and verdict["break_even_batch"] == 64
    assert "faster from batch 64 on" in verdict["says"] and "0.70x at 1" in verdict["says"]


def test_never_faster_and_always_faster_are_said_plainly():
    assert break_even(_rows({1: 0.5, 64: 0.9}), "tome")["fp32"]["break_even_batch"] is None
    assert "no measured batch size" in break_even(_rows({1: 0.5, 64: 0.9}), "tome")["fp32"]["says"]
    assert "at least as fast" in break_even(_rows({1: 1.2, 64: 1.5}), "tome")["fp32"]["says"]
