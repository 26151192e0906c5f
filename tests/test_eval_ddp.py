"""``eval`` and ``sweep`` under torchrun (2 processes, gloo, CPU) split the images across ranks and sum
their counts: top-1, top-5, n and MACs equal one process on the same images, uneven last shard included.

Run as a script, this module is the worker: each rank runs the two verbs; rank 0 prints eval's JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitprune.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_train_ddp import free_port  # noqa: E402

N = 37  # odd: rank 0 gets 19 images, rank 1 gets 18
EVAL = ["eval", "--model", "fmnist-vit-sait", "--method", "sait", "-p", "mode=mass", "-p", "mass=0.9"]
EVAL += ["--limit", str(N), "--batch-size", "8", "--json"]
SWEEP = ["sweep", "--model", "fmnist-vit", "--methods", "tome,evit", "--macs", "0.7", "--limit", str(N)]
SWEEP += ["--eval-batch", "8", "--no-speed", "--json"]
SAME = ("top1", "top5", "n", "gmacs", "macs_ratio")


def worker(out: Path) -> None:
    import vitprune.measure.evaluate as evaluate

    tally, seen = evaluate._tally, []

    def counted(*args, **kwargs):  # the images this rank evaluated, per evaluation
        counts = tally(*args, **kwargs)
        seen.append(counts[2])
        return counts

    evaluate._tally = counted
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(EVAL) == 0
        assert main([*SWEEP, "--out", str(out / "sweep")]) == 0
    (out / f"rank{os.environ['RANK']}.txt").write_text(printed.getvalue())
    (out / f"rank{os.environ['RANK']}.seen").write_text(json.dumps(seen))


def _fashion_mnist():
    from vitprune.data.fashion_mnist import resolve_root

    if not (resolve_root() / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed")


def test_eval_and_sweep_under_torchrun_equal_one_process(tmp_path, capsys):
    _fashion_mnist()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), __file__, str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if done.returncode != 0 and "gloo" in done.stderr.lower() and "connect" in done.stderr.lower():
        pytest.skip(f"gloo cannot connect on this machine: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "rank1.txt").read_text() == ""  # one rank prints
    seen = [json.loads((tmp_path / f"rank{r}.seen").read_text()) for r in range(2)]
    assert seen == [[19] * 4, [18] * 4]  # eval, then the sweep's dense, tome and evit cells
    split = json.loads((tmp_path / "rank0.txt").read_text().split("\n}\n")[0] + "\n}")

    assert main(EVAL) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["n"] == split["n"] == N
    assert {k: split[k] for k in SAME} == {k: single[k] for k in SAME}  # exact: counts, then one division
    assert main([*SWEEP, "--out", str(tmp_path / "single")]) == 0
    rows = [json.loads((tmp_path / d / "sweep.json").read_text())["rows"] for d in ("sweep", "single")]
    assert len(rows[0]) == 3 and [{k: r[k] for k in SAME} for r in rows[0]] == [
        {k: r[k] for k in SAME} for r in rows[1]
    ]


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
