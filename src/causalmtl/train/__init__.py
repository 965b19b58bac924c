"""causalmtl.train: the trainer (environments, early stopping, checkpoints, seeds, devices)."""

from .evaluate import evaluate, predict_log_probs
from .sampling import epoch_plan, steps_per_epoch
from .trainer import (
    CheckpointMismatchError,
    NonFiniteLossError,
    Trainer,
    TrainResult,
    UnsafeCheckpointError,
)

__all__ = [
    "evaluate", "predict_log_probs", "epoch_plan", "steps_per_epoch",
    "CheckpointMismatchError", "NonFiniteLossError", "Trainer", "TrainResult", "UnsafeCheckpointError",
]
