"""Single-task learning (STL) and No Parameter Sharing (NPS, GMTL §5.2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .dense import (
    check_map_tasks,
    finish_output,
    is_map_encoder,
    make_map_head,
    map_channels,
    pool_features,
    spatial_size,
)
from .encoders import encoder_out_dim
from .heads import make_head

__all__ = ["STL", "NPS"]


class STL(MultiTaskModel):
    """One independent network (encoder + head) per task.

    Trained with a summed loss, each column receives only its own task's gradient and Adam
    is per-parameter, so this is T single-task trainings run side by side (the STL baseline of
    both papers). Nothing is shared: ``shared_parameters()`` is empty and
    ``task_parameters(t)`` is column ``t``. ``features`` concatenates the T encoder outputs.

    Parameters
    ----------
    encoder : zero-argument callable returning a fresh encoder (with ``out_dim``); called T times.
        Encoders returning feature maps (``out_channels``, :mod:`causalmtl.nn.dense`) get map
        heads as in :class:`~causalmtl.nn.SharedTrunk`; ``features`` then concatenates the
        pooled maps.
    tasks : the T tasks
    head_hidden : hidden widths of each head
    dense_hidden, decoder : map heads, as in :class:`~causalmtl.nn.SharedTrunk`
    """

    def __init__(self, encoder: Callable[[], nn.Module], tasks: Sequence[Task], head_hidden: Sequence[int] = (),
                 dense_hidden: Sequence[int] | None = None, decoder: str = "conv") -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        if isinstance(encoder, nn.Module) or not callable(encoder):
            raise ValueError(
                "encoder must be a zero-argument callable returning a new encoder (one per task), "
                f"got {type(encoder).__name__}; e.g. lambda: MLPEncoder(10, (64,))"
            )
        self.encoders = nn.ModuleList(encoder() for _ in self.tasks)
        self.feature_maps = is_map_encoder(self.encoders[0])
        if any(is_map_encoder(e) != self.feature_maps for e in self.encoders):
            raise ValueError("encoder must return either vectors (out_dim) or feature maps (out_channels) for every task")
        check_map_tasks(self.tasks, self.feature_maps, "STL")
        if self.feature_maps:
            dims = [map_channels(e) for e in self.encoders]
            self.heads = nn.ModuleList(make_map_head(d, t, head_hidden, dense_hidden, decoder)
                                       for d, t in zip(dims, self.tasks))
        else:
            dims = [encoder_out_dim(e) for e in self.encoders]
            self.heads = nn.ModuleList(make_head(d, t, head_hidden) for d, t in zip(dims, self.tasks))
        self.feature_dim = sum(dims)

    def task_parameters(self, t: int) -> list[nn.Parameter]:
        if not 0 <= t < self.n_tasks:
            raise ValueError(f"task index t={t} out of range [0, {self.n_tasks})")
        return list(self.encoders[t].parameters()) + list(self.heads[t].parameters())

    def forward_full(self, x: ModelInput) -> ModelOutput:
        zs = [e(x) for e in self.encoders]
        if self.feature_maps:
            size = spatial_size(x)
            outs = [finish_output(h(z), t, size) for h, z, t in zip(self.heads, zs, self.tasks)]
            return ModelOutput(outs, features=torch.cat([pool_features(z) for z in zs], dim=1))
        return ModelOutput([h(z) for h, z in zip(self.heads, zs)], features=torch.cat(zs, dim=1))


class NPS(MultiTaskModel):
    """No Parameter Sharing: separately trained networks combined into one multi-task model.

    "A trivial combination of the two trained STL networks" (GMTL §5.2): identical to the STL
    networks during training, different at prediction time when decoded jointly with GMTL
    (α > 0). The task list is the concatenation of the members' tasks; each member keeps its
    own parameters (no parameter is shared between members).

    Parameters
    ----------
    models : trained :class:`MultiTaskModel` instances (typically single-task ones)
    """

    def __init__(self, models: Sequence[MultiTaskModel]) -> None:
        super().__init__()
        if not models:
            raise ValueError("models must hold at least one trained model")
        for i, m in enumerate(models):
            if not isinstance(m, MultiTaskModel):
                raise ValueError(f"models[{i}] must be a MultiTaskModel, got {type(m).__name__}")
        self.members = nn.ModuleList(models)
        self.tasks = tuple(t for m in models for t in m.tasks)
        self.feature_dim = sum(m.feature_dim for m in models)
        owner = []
        for i, m in enumerate(models):
            owner += [(i, j) for j in range(m.n_tasks)]
        self._owner = owner

    def task_parameters(self, t: int) -> list[nn.Parameter]:
        if not 0 <= t < self.n_tasks:
            raise ValueError(f"task index t={t} out of range [0, {self.n_tasks})")
        i, j = self._owner[t]
        member = self._models()[i]
        if member.n_tasks == 1:
            return list(member.parameters())
        return member.task_parameters(j)

    def _models(self) -> list[MultiTaskModel]:
        # `members` is the nn.ModuleList of the MultiTaskModels checked in __init__; indexing or
        # iterating a ModuleList is typed as giving any nn.Module
        return cast(list[MultiTaskModel], list(self.members))

    def forward_full(self, x: ModelInput) -> ModelOutput:
        outs = [m.forward_full(x) for m in self._models()]
        feats = [o.features for o in outs if o.features is not None]
        features = torch.cat(feats, dim=1) if len(feats) == len(outs) else None
        return ModelOutput([y for o in outs for y in o.outputs], features=features,
                           extra={"members": outs})

    def row_losses(self, out: ModelOutput, y: Tensor, maps: Mapping[int, Tensor] | None = None) -> Tensor:
        cols, start = [], 0
        members = out.extra.get("members")
        for i, m in enumerate(self._models()):
            sub = members[i] if members is not None else ModelOutput(out.outputs[start:start + m.n_tasks])
            sub_maps = None if maps is None else {t - start: v for t, v in maps.items()
                                                  if start <= t < start + m.n_tasks}
            cols.append(m.row_losses(sub, y[:, start:start + m.n_tasks], sub_maps))
            start += m.n_tasks
        return torch.cat(cols, dim=1)
