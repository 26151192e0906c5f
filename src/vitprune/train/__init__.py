"""Training and fine-tuning of (token-reduced) timm ViTs with crash-safe, exactly resumable checkpoints.

model = vitprune.apply(timm.create_model(...), "tome", r=4)
vitprune.train.fit(model, loader, TrainConfig(epochs=10, lr=1e-3), out_dir="runs/a")
model = vitprune.train.load_trained("runs/a")
"""

from vitprune.train.average import average_state_dicts
from vitprune.train.checkpoint import find as find_checkpoint
from vitprune.train.config import TrainConfig
from vitprune.train.loop import fit
from vitprune.train.losses import distill_loss
from vitprune.train.rebuild import TrainedRun, load_run, load_trained, model_spec
from vitprune.train.sampling import ShardSampler, train_sampler

__all__ = [
    "ShardSampler",
    "TrainConfig",
    "TrainedRun",
    "average_state_dicts",
    "distill_loss",
    "find_checkpoint",
    "fit",
    "load_run",
    "load_trained",
    "model_spec",
    "train_sampler",
]
