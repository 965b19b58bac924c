"""Shared trunk / hard parameter sharing (STN, GMTL §5.2)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .encoders import encoder_out_dim
from .heads import make_heads

__all__ = ["SharedTrunk"]


class SharedTrunk(MultiTaskModel):
    """One encoder shared by all tasks and one head per task (hard parameter sharing).

    "All weights except for the final classification layer are shared" (GMTL §5.2, Shared
    Trunk Networks; Caruana 1997). ``features`` is the encoder output.

    Parameters
    ----------
    encoder : any module with an ``out_dim`` attribute
    tasks : the T tasks (one head each)
    head_hidden : hidden widths of each head (default: one linear layer)
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        self.encoder = encoder
        self.feature_dim = encoder_out_dim(encoder)
        self.heads = make_heads(self.feature_dim, self.tasks, head_hidden)

    def forward_full(self, x: ModelInput) -> ModelOutput:
        z = self.encoder(x)
        return ModelOutput([h(z) for h in self.heads], features=z)
