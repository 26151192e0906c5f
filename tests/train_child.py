"""Run by test_kill_resume as a separate process: train the tiny ToMe model of test_train for two epochs,
writing the number of finished steps to PROGRESS after each, and stall after step STALL until killed."""

import sys
import time
from pathlib import Path

import torch
from test_train import HYPER, tiny_vit, train_loader

from vitprune.train import fit


def main(out: str, progress: str, stall: int) -> None:
    torch.set_num_threads(1)
    model = tiny_vit(method="tome", drop_path_rate=0.2)
    steps = 0

    def report():
        nonlocal steps
        steps += 1
        Path(progress).write_text(str(steps))
        if steps == stall:
            time.sleep(600)

    fit(model, train_loader(model), out_dir=out, after_step=report, **HYPER)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
