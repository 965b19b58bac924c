"""Full Parameter Sharing (FPS, GMTL §5.2): one network predicting the joint class."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .encoders import encoder_out_dim
from .heads import ClassificationHead

__all__ = ["FPS"]


class FPS(MultiTaskModel):
    """Predict the joint label ``(y_1, …, y_T)`` as one ``Π_t C_t``-way classification.

    "We model p(y, y') directly as a four-class classification, without assuming
    factorization … a single network with all weights shared across both tasks" (GMTL §5.2).
    The joint index is C-order over the class counts (DESIGN.md, "Joint index").

    * ``forward_full(x).extra["joint"]``: joint log-probabilities ``(B, C_1, …, C_T)``;
    * ``forward(x)``: the per-task marginals ``log p(y_t|x) = logsumexp`` over the other tasks;
    * the training loss is the joint negative log-likelihood of each row's observed labels
      (missing labels marginalised out), split over tasks by the chain rule
      ``-log p(y_obs|x) = Σ_t -log p(y_t | y_{obs, <t}, x)`` (see :meth:`row_losses`).

    No parameter is task-specific: ``task_parameters(t)`` is empty and the joint head is the
    predictor for IRM.
    """

    def __init__(self, encoder: nn.Module, tasks: Sequence[Task], head_hidden: Sequence[int] = (),
                 max_joint: int = 4096) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        kinds = [t.kind for t in self.tasks]
        if any(k != "classification" for k in kinds):
            raise ValueError(f"FPS needs classification tasks only, got kinds {kinds}")
        self.n_classes = tuple(t.n_classes for t in self.tasks)
        n_joint = math.prod(self.n_classes)
        if n_joint > max_joint:
            raise ValueError(f"the joint label space has {n_joint} classes > max_joint={max_joint}")
        self.encoder = encoder
        self.feature_dim = encoder_out_dim(encoder)
        self.joint_head = ClassificationHead(self.feature_dim, n_joint, head_hidden)
        self.heads = nn.ModuleList()

    def task_parameters(self, t: int) -> list[nn.Parameter]:
        if not 0 <= t < self.n_tasks:
            raise ValueError(f"task index t={t} out of range [0, {self.n_tasks})")
        return []

    def predictor_parameters(self) -> list[nn.Parameter]:
        return list(self.joint_head.parameters())

    def forward_full(self, x: ModelInput) -> ModelOutput:
        z = self.encoder(x)
        joint = self.joint_head(z).view(-1, *self.n_classes)
        n = len(self.n_classes)
        dims = list(range(1, n + 1))
        marginals = [torch.logsumexp(joint, dim=[d for d in dims if d != t + 1]) if n > 1 else joint
                     for t in range(n)]
        return ModelOutput(marginals, features=z, extra={"joint": joint})

    def row_losses(self, out: ModelOutput, y: Tensor, maps: object = None) -> Tensor:
        """Chain-rule split of the joint NLL of the observed labels, ``(B, T)``.

        With ``L_s = log Σ_{y' consistent with the observed labels of tasks < s} p(y'|x)``
        (``L_0 = 0``), the loss of task ``t`` is ``-(L_{t+1} - L_t)`` where ``y_t`` is observed
        and 0 otherwise; the row sum is ``-log p(y_obs | x)``.
        """
        joint = out.extra["joint"].float()
        b = joint.shape[0]
        n = len(self.n_classes)
        observed = ~torch.isnan(y)
        y0 = torch.where(observed, y, torch.zeros((), dtype=y.dtype, device=y.device)).long()
        allowed = torch.ones_like(joint, dtype=torch.bool)
        prev = joint.new_zeros(b)
        cols = []
        for t, c in enumerate(self.n_classes):
            onehot = nn.functional.one_hot(y0[:, t], c).bool() | ~observed[:, t:t + 1]
            shape = [b] + [1] * n
            shape[t + 1] = c
            allowed = allowed & onehot.view(shape)
            cur = torch.logsumexp(joint.masked_fill(~allowed, float("-inf")).reshape(b, -1), dim=1)
            cols.append(torch.where(observed[:, t], prev - cur, torch.zeros_like(cur)))
            prev = cur
        return torch.stack(cols, dim=1)
