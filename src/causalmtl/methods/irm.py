"""IRM adapted to multi-task learning with per-task predictors (MT-CRL Eq. 6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._parallel import global_gradient
from ..nn.base import MultiTaskModel
from ._penalty import annealed_weight, maybe_reset_optimizer
from .base import Method
from .batch import Batch

__all__ = ["IRM", "irm_penalty"]


def irm_penalty(env_risks: Tensor, predictor_params: Sequence[torch.nn.Parameter]) -> Tensor:
    """``Σ_e Σ_t ‖∇_{f_t} R_t^e‖²`` (MT-CRL Eq. 6, the baseline's penalty), differentiable.

    ``env_risks`` is ``(E, T)``. Because ``R_t^e`` depends on the predictor parameters of task
    ``t`` only, one ``autograd.grad`` of ``Σ_t R_t^e`` per environment gives every task's
    gradient at once (``create_graph=True``), and its squared norm equals the double sum over
    tasks. For a model whose predictor is shared by all tasks (FPS), it is the original IRM
    penalty ``Σ_e ‖∇_f Σ_t R_t^e‖²`` of that single predictor.
    """
    params = [p for p in predictor_params if p.requires_grad]
    if not params:
        raise ValueError("IRM needs predictor parameters (task heads); the model has none")
    total = env_risks.new_zeros(())
    for e in range(env_risks.shape[0]):
        grads = torch.autograd.grad(env_risks[e].sum(), params, create_graph=True, allow_unused=True)
        grads = tuple(None if g is None else global_gradient(g) for g in grads)  # data-parallel
        total = total + sum((g * g).sum() for g in grads if g is not None)
    return total


class IRM(Method):
    """Invariant risk minimisation with per-task predictors (Arjovsky et al. 2019; MT-CRL Eq. 6).

    Loss: ``Σ_t w_t mean_e R_t^e + λ_s Σ_t Σ_e ‖∇_{f_t} R_t^e‖²`` where ``f_t`` is task ``t``'s
    predictor (its head; MT-CRL §4 "For IRM we adopt different per-task predictors instead of
    all-one vector … and calculate penalty via Eq. (6)"). The weight ``λ_s`` is ``warmup`` for
    the first ``anneal_steps`` steps and ``lambda`` afterwards; Adam's moments are reset when
    it jumps (DomainBed). One batch per environment (at least two).
    """

    env_protocol: ClassVar[str] = "per_env"  # type: ignore[misc]
    min_environments: ClassVar[int] = 2
    HPARAMS: ClassVar[dict[str, tuple[Any, str]]] = {
        "lambda": (1.0, "penalty weight after annealing"),
        "anneal_steps": (0, "steps with the warm-up weight before switching to lambda"),
        "warmup": (1.0, "penalty weight during annealing"),
        "reset_optimizer": (True, "clear Adam's moments when the weight switches"),
    }
    citation: ClassVar[str] = ("Arjovsky et al., Invariant Risk Minimization, 2019; per-task form of "
                               "Hu et al., MT-CRL, NeurIPS 2022, Eq. (6)")

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        self._nonneg("lambda")
        self._nonneg("warmup")
        if int(self.hparams["anneal_steps"]) < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.hparams['anneal_steps']!r}")

    def penalty_weight(self) -> float:
        return annealed_weight(self.steps, float(self.hparams["lambda"]), int(self.hparams["anneal_steps"]),
                               float(self.hparams["warmup"]))

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        maybe_reset_optimizer(self.optimizer, self.steps, int(self.hparams["anneal_steps"]),
                              bool(self.hparams["reset_optimizer"]))
        risks, _, _ = self.env_risks(batches)
        task = self.task_loss(risks)
        penalty = irm_penalty(risks, self.model.predictor_parameters())
        loss = task + self.penalty_weight() * penalty
        logs = {f"loss/{t.name}": risks[:, i].mean().detach() for i, t in enumerate(self.model.tasks)}
        logs.update({"task_loss": task.detach(), "penalty": penalty.detach(), "loss": loss.detach()})
        return loss, logs
