"""GradVac: gradient vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._hparams import HParam, log_uniform
from ..nn.base import MultiTaskModel
from .base import GradientMethod
from .pcgrad import random_task_orders

__all__ = ["GradVac", "gradvac_aggregate", "parameter_groups"]


def parameter_groups(names_shapes: Sequence[tuple[str, int]], group: str) -> list[int]:
    """Sizes of the contiguous parameter groups of the flattened shared parameters.

    ``names_shapes`` lists ``(name, numel)`` in flattening order. ``group="whole"``: one
    group; ``"module"``: one per module (consecutive parameters sharing the name prefix before
    the last dot, e.g. a Linear's weight and bias); ``"tensor"``: one per parameter tensor.
    """
    if group not in ("whole", "module", "tensor"):
        raise ValueError(f"group must be 'whole', 'module' or 'tensor', got {group!r}")
    sizes: list[int] = []
    last: str | None = None
    for name, n in names_shapes:
        key = "" if group == "whole" else name if group == "tensor" else name.rpartition(".")[0]
        if sizes and key == last:
            sizes[-1] += int(n)
        else:
            sizes.append(int(n))
        last = key
    return sizes or [0]


def _group_gram(grads: Tensor, sizes: Sequence[int]) -> Tensor:
    """Per-group Gram matrices ``M_k = G_k G_kᵀ``: ``(T, P) -> (K, T, T)`` (one matmul per group)."""
    if len(sizes) == 1:
        return (grads @ grads.T).unsqueeze(0)
    return torch.stack([g @ g.T for g in torch.split(grads, list(sizes), dim=1)])


def gradvac_aggregate(
    grads: Tensor,
    orders: Tensor,
    targets: Tensor,
    group_sizes: Sequence[int],
    beta: float,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """The GradVac update and the new EMA cosine targets.

    Wang et al. 2021, Algorithm 1 (per parameter group ``k``): for each task ``i``,
    ``g_i' ← g_i``; for each other task ``j`` in random order, with
    ``φ_ij = cos(g_i', g_j)`` and target ``φ̂_ij``: if ``φ_ij < φ̂_ij``,
    ``g_i' ← g_i' + ‖g_i'‖ (φ̂_ij √(1−φ_ij²) − φ_ij √(1−φ̂_ij²)) / (‖g_j‖ √(1−φ̂_ij²)) · g_j``
    (which sets the cosine to exactly ``φ̂_ij``); then ``φ̂_ij ← (1−β) φ̂_ij + β φ_ij``.
    The update is ``Σ_i g_i'``.

    Computed in Gram space, per group: ``g_i'`` restricted to group ``k`` stays a linear
    combination ``Σ_l C_kil g_l`` of the original gradients' group-``k`` blocks, so with the
    group Gram matrices ``M_k = G_k G_kᵀ`` (``O(T²P)`` once) ``g_i' · g_j = (C_k M_k)_ij``,
    ``‖g_i'‖² = (C_k M_k C_kᵀ)_ii`` and each adjustment only changes ``C_kij``; the rounds are
    ``O(KT³)`` small ops vectorised over ``i`` and ``k``, the update ``(1ᵀ C_k) G_k`` per group.
    Pure.

    Parameters
    ----------
    grads : ``(T, P)`` per-task gradients of the shared parameters
    orders : ``(T, T-1)`` visiting order of the other tasks for each task
    targets : ``(T, T, K)`` current targets ``φ̂``
    group_sizes : sizes of the K contiguous groups (summing to P)
    beta : EMA rate in [0, 1]
    eps : added to the denominators of the cosine and of the step size

    Returns
    -------
    update : ``(P,)``
    new_targets : ``(T, T, K)``
    """
    n_tasks = grads.shape[0]
    sizes = list(group_sizes)
    if sum(sizes) != grads.shape[1] or targets.shape != (n_tasks, n_tasks, len(sizes)):
        raise ValueError(
            f"group_sizes sum to {sum(sizes)} with {len(sizes)} groups but grads has shape "
            f"{tuple(grads.shape)} and targets {tuple(targets.shape)}"
        )
    new_targets = targets.clone()
    if n_tasks < 2:
        return grads.sum(0), new_targets
    orders = orders.to(grads.device)
    rows = torch.arange(n_tasks, device=grads.device)
    gram = _group_gram(grads, sizes)  # (K, T, T)
    norm_all = gram.diagonal(dim1=1, dim2=2).clamp(min=0).sqrt().T  # (T, K): ‖g_j‖ per group
    coef = torch.eye(n_tasks, dtype=grads.dtype, device=grads.device).repeat(len(sizes), 1, 1)
    for r in range(n_tasks - 1):
        j = orders[:, r]
        cm = coef @ gram  # (K, T, T): (C M)_il = g_i' · g_l
        dot = cm[:, rows, j].T  # (T, K)
        norm_i = (cm * coef).sum(2).clamp(min=0).sqrt().T  # ‖g_i'‖ = √(C M Cᵀ)_ii
        norm_j = norm_all[j]
        phi = dot / (norm_i * norm_j + eps)
        target = new_targets[rows, j].to(phi.dtype)
        root_t = (1 - target * target).clamp(min=0).sqrt()
        root_p = (1 - phi * phi).clamp(min=0).sqrt()
        w = norm_i * (target * root_p - phi * root_t) / (norm_j * root_t + eps)
        w = torch.where(phi < target, w, torch.zeros_like(w))
        coef[:, rows, j] += w.T
        new_targets[rows, j] = ((1 - beta) * target + beta * phi).to(new_targets.dtype)
    weights = coef.sum(1)  # (K, T): the update is Σ_k (1ᵀ C_k) G_k on group k
    if len(sizes) == 1:
        return weights[0] @ grads, new_targets
    return torch.cat([w @ g for w, g in zip(weights, torch.split(grads, list(sizes), dim=1))]), new_targets


class GradVac(GradientMethod):
    """Gradient vaccine (Wang et al., ICLR 2021, Algorithm 1).

    Like PCGrad but with adaptive, per-pair cosine targets ``φ̂_ij`` (an EMA of the observed
    cosines with rate β, starting at 0) instead of the fixed target 0: whenever the observed
    similarity falls below the target, ``g_i`` is moved towards ``g_j`` so that their cosine
    equals the target. Targets are kept per parameter group (``group="whole" | "module" |
    "tensor"``), stored as the buffer ``targets`` ``(T, T, K)``.
    """

    #: the EMA cosine targets φ̂ ``(T, T, K)`` (a buffer, registered in ``__init__``)
    targets: Tensor
    HPARAMS: ClassVar[dict[str, HParam]] = {
        **GradientMethod.HPARAMS,
        "beta": HParam(0.01, log_uniform(1e-3, 1e-1), "EMA rate β of the cosine targets, in [0, 1]"),
        "group": HParam("whole", None, "parameter groups with their own targets: 'whole', 'module' or 'tensor'"),
        "seed": HParam(0, None, "seed of the random task order"),
    }
    citation: ClassVar[str] = ("Wang et al., Gradient Vaccine: Investigating and Improving Multi-task "
                               "Optimization in Massively Multilingual Models, ICLR 2021")

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        beta = float(self.hparams["beta"])
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.hparams['beta']!r}")
        self.beta = beta
        shared = [(n, p.numel()) for n, p in model.named_shared_parameters() if p.requires_grad]
        self.group_sizes = parameter_groups(shared, str(self.hparams["group"]))
        k = len(self.group_sizes)
        self.register_buffer("targets", torch.zeros(model.n_tasks, model.n_tasks, k))
        self.generator = torch.Generator().manual_seed(int(self.hparams["seed"]))

    def aggregate(self, grads: Tensor) -> Tensor:
        update, new = gradvac_aggregate(grads, random_task_orders(grads.shape[0], self.generator),
                                        self.targets, self.group_sizes, self.beta)
        self.targets.copy_(new)
        return update

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.generator.set_state(state["generator"])
