"""A training process killed with SIGKILL mid-epoch resumes to the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train import HYPER, max_diff, tiny_vit, train_loader

from vitprune.train import find_checkpoint, fit

pytestmark = pytest.mark.usefixtures("single_thread")

STEPS_PER_EPOCH = 6  # test_train's loader: 96 images in batches of 16
STALL = STEPS_PER_EPOCH + 3  # the child stops in the middle of its second epoch


def _wait_for_step(child: subprocess.Popen, progress: Path, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (progress.exists() and progress.read_text() == str(step)):
        if child.poll() is not None:
            raise AssertionError(f"training process ended early: {child.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"training process did not reach step {step} in {timeout} s")
        time.sleep(0.05)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    out, progress = tmp_path / "run", tmp_path / "progress"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = Path(__file__).with_name("train_child.py")
    child = subprocess.Popen(
        [sys.executable, str(script), str(out), str(progress), str(STALL)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_step(child, progress, STALL)
        assert find_checkpoint(out).name == "epoch-0001"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    resumed = tiny_vit(seed=5, method="tome", drop_path_rate=0.2)  # weights must all come from disk
    result = fit(resumed, train_loader(resumed), out_dir=out, resume=out, **HYPER)
    straight = tiny_vit(method="tome", drop_path_rate=0.2)
    fit(straight, train_loader(straight), out_dir=tmp_path / "straight", **HYPER)
    assert result["epochs"] == 2 and result["global_step"] == 2 * STEPS_PER_EPOCH
    assert max_diff(straight, resumed) <= 1e-6
