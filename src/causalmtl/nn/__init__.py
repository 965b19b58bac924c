"""causalmtl.nn: encoders, heads and multi-task architectures (the MultiTaskModel contract)."""

from .base import (
    ModelInput,
    ModelOutput,
    MultiTaskModel,
    batch_size_of,
    check_tasks,
    grouped_risks,
    masked_task_losses,
    row_losses,
    seeded,
)
from .encoders import CNNEncoder, EmbeddingEncoder, MLPEncoder, encoder_out_dim
from .heads import ClassificationHead, RegressionHead, make_head, make_heads
from .shared_trunk import SharedTrunk

__all__ = [
    "ModelInput", "ModelOutput", "MultiTaskModel", "batch_size_of", "check_tasks",
    "grouped_risks", "masked_task_losses", "row_losses", "seeded",
    "CNNEncoder", "EmbeddingEncoder", "MLPEncoder", "encoder_out_dim",
    "ClassificationHead", "RegressionHead", "make_head", "make_heads",
    "SharedTrunk",
]
