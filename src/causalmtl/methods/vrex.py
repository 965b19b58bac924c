"""V-REx: variance risk extrapolation (Krueger et al., ICML 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from .._hparams import HParam, choice, log_uniform
from ..nn.base import MultiTaskModel
from ._penalty import annealed_weight, maybe_reset_optimizer, population_variance
from .base import EnvProtocol, Method
from .batch import Batch

__all__ = ["VREx", "vrex_penalty"]


def vrex_penalty(env_risks: Tensor, task_weights: Tensor | None = None, per_task: bool = True) -> Tensor:
    """The V-REx penalty ``Var_e(R^e)`` (Krueger et al. 2021, the V-REx objective), population variance.

    ``per_task=True`` (multi-task form): ``Σ_t Var_e(R_t^e)``; ``per_task=False``: the variance
    of the weighted total risk ``Var_e(Σ_t w_t R_t^e)``. ``env_risks`` is ``(E, T)``.
    """
    if per_task:
        return population_variance(env_risks, 0).sum()
    w = env_risks.new_ones(env_risks.shape[1]) if task_weights is None else task_weights
    return population_variance((env_risks * w).sum(1), 0)


class VREx(Method):
    """Risk extrapolation by penalising the variance of per-environment risks.

    Loss: ``Σ_t w_t mean_e R_t^e + λ_s · Σ_t Var_e(R_t^e)`` (Krueger et al. 2021, V-REx:
    ``R_V-REx = β Var({R_1..R_m}) + Σ_e R_e``, applied per task; ``per_task=False`` uses the
    total risk). ``λ_s`` is annealed as for IRM. One batch per environment (at least two).
    """

    env_protocol: ClassVar[EnvProtocol] = "per_env"
    min_environments: ClassVar[int] = 2
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "lambda": HParam(1.0, log_uniform(1e-2, 1e2), "variance penalty weight β after annealing"),
        "anneal_steps": HParam(0, choice([0, 50, 100, 500]), "steps with the warm-up weight before switching to lambda"),
        "warmup": HParam(1.0, None, "penalty weight during annealing"),
        "reset_optimizer": HParam(True, None, "clear Adam's moments when the weight switches"),
        "per_task": HParam(True, None, "variance per task summed (True) or of the total risk (False)"),
    }
    citation: ClassVar[str] = "Krueger et al., Out-of-Distribution Generalization via Risk Extrapolation (REx), ICML 2021"

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
        penalty = vrex_penalty(risks, self.task_weights, bool(self.hparams["per_task"]))
        loss = task + self.penalty_weight() * penalty
        logs = {f"loss/{t.name}": risks[:, i].mean().detach() for i, t in enumerate(self.model.tasks)}
        logs.update({"task_loss": task.detach(), "penalty": penalty.detach(), "loss": loss.detach()})
        return loss, logs
