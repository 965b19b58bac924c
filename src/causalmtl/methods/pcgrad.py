"""PCGrad: projecting conflicting gradients (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._hparams import HParam
from ..nn.base import MultiTaskModel
from .base import GradientMethod

__all__ = ["PCGrad", "pcgrad_aggregate", "random_task_orders"]


def random_task_orders(n_tasks: int, generator: torch.Generator) -> Tensor:
    """For every task ``i`` a uniformly random order of the other tasks, ``(T, T-1)`` (CPU)."""
    keys = torch.rand(n_tasks, n_tasks, generator=generator)
    keys.fill_diagonal_(2.0)  # self last
    return keys.argsort(dim=1)[:, : n_tasks - 1]


def pcgrad_aggregate(grads: Tensor, orders: Tensor, eps: float = 1e-12) -> Tensor:
    """The PCGrad update ``Σ_i g_i^PC`` from per-task gradients ``(T, P)``.

    Yu et al. 2020, Algorithm 1: for each task ``i``, ``g_i^PC ← g_i``; for each other task
    ``j`` in random order, if ``g_i^PC · g_j < 0`` then
    ``g_i^PC ← g_i^PC − (g_i^PC · g_j) / ‖g_j‖² · g_j`` (projection onto the normal
    plane of the original ``g_j``).

    Computed in Gram space: every ``g_i^PC`` stays a linear combination
    ``Σ_l C_il g_l`` of the original gradients, so with the Gram matrix ``M = G Gᵀ``
    (one ``O(T²P)`` matmul) the inner products are ``g_i^PC · g_j = (C M)_ij`` and each
    projection only changes ``C_ij``. The sequential rounds are ``O(T²)`` each (vectorised over
    ``i``: round ``r`` projects every task on its ``r``-th partner at once) and the update is
    ``(1ᵀ C) G``, one ``O(TP)`` product. Pure function of its inputs (no device-host copies).

    Parameters
    ----------
    grads : ``(T, P)`` per-task gradients of the shared parameters
    orders : ``(T, T-1)`` long, row ``i`` the order in which task ``i`` visits the others
    eps : lower bound of ``‖g_j‖²`` in the denominator
    """
    n_tasks = grads.shape[0]
    if n_tasks < 2:
        return grads.sum(0)
    orders = orders.to(grads.device)
    rows = torch.arange(n_tasks, device=grads.device)
    gram = grads @ grads.T
    sq_norm = gram.diagonal().clamp(min=eps)
    coef = torch.eye(n_tasks, dtype=grads.dtype, device=grads.device)
    for r in range(n_tasks - 1):
        j = orders[:, r]
        dot = (coef * gram[:, j].T).sum(1)  # g_i^PC · g_j = Σ_l C_il M_lj
        coef[rows, j] -= dot.clamp(max=0.0) / sq_norm[j]
    return coef.sum(0) @ grads


class PCGrad(GradientMethod):
    """Gradient surgery for multi-task learning (Yu et al., NeurIPS 2020, Algorithm 1).

    Per-task gradients of the shared parameters are projected away from each other when they
    conflict (negative inner product), in a random task order drawn every step; the projected
    gradients are summed. Task-specific parameters (heads) keep their own task's gradient.
    With no conflict the update is the plain sum of the task gradients (ERM).
    """

    HPARAMS: ClassVar[dict[str, HParam]] = {
        **GradientMethod.HPARAMS,
        "seed": HParam(0, None, "seed of the random task order (a torch.Generator saved in the state dict)"),
    }
    citation: ClassVar[str] = "Yu et al., Gradient Surgery for Multi-Task Learning, NeurIPS 2020"

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        self.generator = torch.Generator().manual_seed(int(self.hparams["seed"]))

    def aggregate(self, grads: Tensor) -> Tensor:
        return pcgrad_aggregate(grads, random_task_orders(grads.shape[0], self.generator))

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.generator.set_state(state["generator"])
