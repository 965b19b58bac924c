"""The multi-task model contract shared by every architecture, method and the trainer.

A multi-task model is an :class:`torch.nn.Module` subclassing :class:`MultiTaskModel`:

* ``forward(x)`` returns a list of ``T`` per-task outputs: log-probabilities ``(B, C_t)``
  for a classification task (normalised per task, DESIGN.md "Per-task scores") and ``(B,)``
  for a regression task;
* ``forward_full(x)`` returns a :class:`ModelOutput` with the same outputs plus the shared
  representation ``features`` ``(B, D)`` (used by DANN) and any architecture-specific
  tensors in ``extra`` (e.g. the joint log-probabilities of FPS, MT-CRL's module outputs);
* ``row_losses(out, y)`` returns the ``(B, T)`` per-row losses (0 where the target is
  missing, ``NaN`` in ``y``) and ``task_losses(out, y[, group, n_groups])`` the masked
  per-task risks ``R_t`` (mean over the labelled rows), ``(T,)`` or ``(G, T)`` per group;
* ``shared_parameters()`` / ``task_parameters(t)`` split the parameters into those that
  influence more than one task's output (the ones PCGrad / GradVac operate on) and those that
  influence task ``t`` only (its head); ``predictor_parameters()`` are the per-task predictors
  ``f_t`` that the IRM penalty of MT-CRL Eq. (6) differentiates;
* ``param_groups(lr)`` gives optimiser parameter groups (e.g. cross-stitch units with their
  own learning rate).

Inputs ``x`` are a tensor ``(B, ...)`` or a dict of tensors sharing the first axis.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._parallel import global_sums
from ..data.base import Task
from .losses import task_row_losses

ModelInput = Tensor | Mapping[str, Tensor]

__all__ = [
    "ModelInput",
    "ModelOutput",
    "MultiTaskModel",
    "masked_task_losses",
    "row_losses",
    "grouped_risks",
    "check_tasks",
    "seeded",
    "batch_size_of",
    "loss_precision",
]


def batch_size_of(x: ModelInput) -> int:
    """Number of rows of a tensor or of a dict of tensors."""
    if isinstance(x, Mapping):
        return int(next(iter(x.values())).shape[0])
    return int(x.shape[0])


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's RNG seeded to ``seed``, restoring the global state afterwards.

    Use it to build models reproducibly without touching the caller's RNG state::

        with seeded(0):
            model = SharedTrunk(MLPEncoder(10, (32,)), tasks)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@dataclass
class ModelOutput:
    """What :meth:`MultiTaskModel.forward_full` returns.

    Attributes
    ----------
    outputs : list of T tensors; log-probabilities ``(B, C_t)`` or regression values ``(B,)``
    features : the shared representation ``(B, D)`` (``D = model.feature_dim``), or ``None``
    extra : architecture-specific tensors (e.g. ``"joint"`` log-probabilities for FPS)
    """

    outputs: list[Tensor]
    features: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def loss_precision(x: Tensor) -> Tensor:
    """``x`` in the precision losses are computed in: at least float32 (half / bfloat16 outputs of
    mixed precision are upcast), float64 kept."""
    return x if x.dtype == torch.float64 else x.float()


def row_losses(outputs: Sequence[Tensor], y: Tensor, tasks: Sequence[Task],
               maps: Mapping[int, Tensor] | None = None) -> Tensor:
    """Per-row, per-task losses ``(B, T)``, exactly ``0`` where the target is missing.

    ``ℓ_t`` is the negative log-likelihood ``-out_t[i, y_it]`` for a classification task
    (``out_t`` holds log-probabilities) and the squared error ``(out_t[i] - y_it)^2`` for a
    regression task. For a dense task (segmentation or a regression map) it is the mean of
    the per-pixel loss over the row's valid pixels (pixel-wise cross-entropy, L2, L1 or
    cosine: ``Task.loss_name``), with the target map in ``maps[t]``. Missing targets are
    ``NaN`` in ``y``; they get loss 0 and no gradient. Losses are float32, or float64 for
    float64 outputs (:func:`loss_precision`).

    Parameters
    ----------
    outputs : T tensors, ``(B, C_t)`` log-probabilities, ``(B,)`` / ``(B, 1)`` values, or
        ``(B, C, H, W)`` maps for dense tasks
    y : ``(B, T)`` float targets, ``NaN`` where missing
    tasks : the T task descriptions (kind and class count)
    maps : dense targets by task index (``Batch.maps``); needed when a task is dense
    """
    if len(outputs) != len(tasks) or y.ndim != 2 or y.shape[1] != len(tasks):
        raise ValueError(
            f"outputs has {len(outputs)} tasks and y has shape {tuple(y.shape)}, "
            f"expected {len(tasks)} tasks and y of shape (B, {len(tasks)})"
        )
    observed = ~torch.isnan(y)
    y0 = torch.where(observed, y, torch.zeros((), dtype=y.dtype, device=y.device))
    cols = []
    for t, (out, task) in enumerate(zip(outputs, tasks)):
        if task.is_dense:
            if maps is None or t not in maps:
                raise ValueError(f"task {t} ({task.name!r}) is a {task.kind} task: its target maps "
                                 f"must be passed as maps[{t}] (Batch.maps)")
            per_row = task_row_losses(out, maps[t], task)[0]
        elif task.kind == "classification":
            per_row = -loss_precision(out).gather(1, y0[:, t].long().unsqueeze(1)).squeeze(1)
        else:
            pred = loss_precision(out).reshape(out.shape[0])
            per_row = (pred - y0[:, t].to(pred.dtype)) ** 2
        cols.append(per_row)
    losses = torch.stack(cols, dim=1)
    return torch.where(observed, losses, torch.zeros((), dtype=losses.dtype, device=y.device))


def grouped_risks(
    losses: Tensor, observed: Tensor, group: Tensor | None = None, n_groups: int = 1
) -> Tensor:
    """Masked mean risks per group and task, ``(G, T)``.

    ``R[g, t] = Σ_{i in g, y_it observed} ℓ[i, t] / max(1, #{i in g : y_it observed})``;
    a group without a label for task ``t`` gets risk 0 (and no gradient). With ``group=None``
    all rows form one group. Vectorised with ``index_add`` (no loop over rows or groups).

    Parameters
    ----------
    losses : ``(B, T)`` per-row losses, 0 where missing (see :func:`row_losses`)
    observed : ``(B, T)`` boolean, True where the target is present
    group : ``(B,)`` long group (environment) index in ``[0, n_groups)``, or ``None``
    n_groups : number of groups G
    """
    obs = observed.to(losses.dtype)
    if group is None:
        total, count = global_sums(losses.sum(0), obs.sum(0))  # data parallel: global batch
        return (total / count.clamp(min=1)).unsqueeze(0)
    total = losses.new_zeros(n_groups, losses.shape[1]).index_add(0, group, losses)
    count = obs.new_zeros(n_groups, losses.shape[1]).index_add(0, group, obs)
    # data-parallel training: sums over the global batch (identity otherwise; docs/scaling.md)
    total, count = global_sums(total, count)
    return total / count.clamp(min=1)


def masked_task_losses(outputs: Sequence[Tensor], y: Tensor, tasks: Sequence[Task],
                       maps: Mapping[int, Tensor] | None = None) -> Tensor:
    """Per-task risks ``R_t`` with missing targets masked out, shape ``(T,)``.

    ``R_t = (1 / n_t) Σ_{i : y_it observed} ℓ_t(out_t[i], y_it)`` with ``n_t`` the number of
    labelled rows of task ``t`` in the batch (``R_t = 0``, with zero gradient, when
    ``n_t = 0``); ``ℓ_t`` as in :func:`row_losses`.
    """
    return grouped_risks(row_losses(outputs, y, tasks, maps), ~torch.isnan(y))[0]


def check_tasks(model_tasks: Sequence[Task], data_tasks: Sequence[Task], name: str = "dataset") -> None:
    """Raise ``ValueError`` unless the data's tasks match the model's heads (count, kind, classes)."""
    if len(model_tasks) != len(data_tasks):
        raise ValueError(
            f"{name} has {len(data_tasks)} tasks {[t.name for t in data_tasks]} but the model has "
            f"{len(model_tasks)} heads {[t.name for t in model_tasks]}"
        )
    for i, (m, d) in enumerate(zip(model_tasks, data_tasks)):
        if m.kind != d.kind:
            raise ValueError(
                f"{name} task {i} ({d.name!r}) is {d.kind} but the model's head {i} ({m.name!r}) is {m.kind}"
            )
        if m.kind == "classification" and m.n_classes != d.n_classes:
            raise ValueError(
                f"{name} task {i} ({d.name!r}) has {d.n_classes} classes but the model's head {i} "
                f"({m.name!r}) predicts {m.n_classes}"
            )


class MultiTaskModel(nn.Module):
    """Base class of every multi-task architecture (see the module docstring for the contract).

    Subclasses set ``self.tasks`` (a tuple of :class:`~causalmtl.data.base.Task`),
    ``self.feature_dim`` and implement :meth:`forward_full`. By default the per-task heads
    live in ``self.heads`` (an :class:`~torch.nn.ModuleList` of length T): their parameters
    are task-specific, every other parameter is shared. Architectures where that is not the
    case (STL, NPS, FPS) override :meth:`task_parameters` / :meth:`shared_parameters`.
    """

    tasks: tuple[Task, ...]
    feature_dim: int
    heads: nn.ModuleList

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def forward_full(self, x: ModelInput) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: ModelInput) -> list[Tensor]:
        """The T per-task outputs (log-probabilities or regression values)."""
        return self.forward_full(x).outputs

    def row_losses(self, out: ModelOutput, y: Tensor, maps: Mapping[int, Tensor] | None = None) -> Tensor:
        """Per-row, per-task losses ``(B, T)``, 0 where missing; see :func:`row_losses`.

        Architectures whose training loss is not the sum of per-task likelihoods of
        ``out.outputs`` (FPS: the joint likelihood) override this.
        """
        return row_losses(out.outputs, y, self.tasks, maps)

    def task_losses(
        self, out: ModelOutput, y: Tensor, group: Tensor | None = None, n_groups: int = 1,
        maps: Mapping[int, Tensor] | None = None,
    ) -> Tensor:
        """Masked risks ``(T,)``, or ``(G, T)`` per group when ``group`` is given.

        See :func:`grouped_risks`; a method uses ``group = env index`` to get the
        per-environment risks ``R_t^e`` from one forward pass. ``maps``: the batch's dense
        targets (``Batch.maps``).
        """
        risks = grouped_risks(self.row_losses(out, y, maps), ~torch.isnan(y), group, n_groups)
        return risks[0] if group is None else risks

    # --- parameter partition -----------------------------------------------------------
    def task_parameters(self, t: int) -> list[nn.Parameter]:
        """Parameters that influence task ``t``'s output only (its head)."""
        if not 0 <= t < self.n_tasks:
            raise ValueError(f"task index t={t} out of range [0, {self.n_tasks})")
        return list(self.heads[t].parameters())

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters that influence more than one task (everything not task-specific)."""
        own = {id(p) for t in range(self.n_tasks) for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in own]

    def predictor_parameters(self) -> list[nn.Parameter]:
        """Parameters of the per-task predictors ``f_t`` (all heads), for IRM (MT-CRL Eq. 6)."""
        seen: set[int] = set()
        out = []
        for t in range(self.n_tasks):
            for p in self.task_parameters(t):
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def named_shared_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs of :meth:`shared_parameters` (for GradVac groups)."""
        shared = {id(p) for p in self.shared_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) in shared]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; the default is one group at learning rate ``lr``."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def config(self) -> dict[str, Any]:
        """A JSON-able description used to check that a checkpoint fits this model."""
        return {
            "class": type(self).__name__,
            "tasks": [(t.name, t.kind, t.n_classes) for t in self.tasks],
            "parameters": {n: list(p.shape) for n, p in self.named_parameters()},
        }
