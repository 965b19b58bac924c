"""Shared trunk / hard parameter sharing (STN, GMTL §5.2)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .dense import (
    check_map_tasks,
    finish_output,
    is_map_encoder,
    make_map_heads,
    map_channels,
    pool_features,
    spatial_size,
)
from .encoders import encoder_out_dim
from .heads import make_heads

__all__ = ["SharedTrunk"]


class SharedTrunk(MultiTaskModel):
    """One encoder shared by all tasks and one head per task (hard parameter sharing).

    "All weights except for the final classification layer are shared" (GMTL §5.2, Shared
    Trunk Networks; Caruana 1997). ``features`` is the encoder output.

    Parameters
    ----------
    encoder : any module with an ``out_dim`` attribute (vectors), or with ``out_channels`` and
        no ``out_dim`` (feature maps, :mod:`causalmtl.nn.dense`): then classification /
        regression heads pool the map, segmentation / dense heads are conv heads, outputs
        are at the input's resolution and ``features`` is the pooled map ``(B, C)``
    tasks : the T tasks (one head each)
    head_hidden : hidden widths of each head (default: one linear layer)
    dense_hidden : conv widths of map heads (default ``(C,)``, :class:`~causalmtl.nn.dense.ConvHead`)
    decoder : map heads, "conv" or "taskonomy" (:class:`~causalmtl.nn.dense.TaskonomyDecoder`)
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], head_hidden: Sequence[int] = (),
                 dense_hidden: Sequence[int] | None = None, decoder: str = "conv") -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        self.encoder = encoder
        self.feature_maps = is_map_encoder(encoder)
        check_map_tasks(self.tasks, self.feature_maps, "SharedTrunk")
        if self.feature_maps:
            self.feature_dim = map_channels(encoder)
            self.heads = make_map_heads(self.feature_dim, self.tasks, head_hidden, dense_hidden, decoder)
        else:
            self.feature_dim = encoder_out_dim(encoder)
            self.heads = make_heads(self.feature_dim, self.tasks, head_hidden)

    def forward_full(self, x: ModelInput) -> ModelOutput:
        z = self.encoder(x)
        if self.feature_maps:
            size = spatial_size(x)
            outs = [finish_output(h(z), t, size) for h, t in zip(self.heads, self.tasks)]
            return ModelOutput(outs, features=pool_features(z))
        return ModelOutput([h(z) for h in self.heads], features=z)
