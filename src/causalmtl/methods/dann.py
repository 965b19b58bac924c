"""DANN: domain-adversarial training (Ganin et al., JMLR 2016)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from .._hparams import HParam, log_uniform
from .._parallel import global_sum
from ..nn.base import MultiTaskModel
from .base import EnvProtocol, Method
from .batch import Batch

__all__ = ["DANN", "GradientReversal", "grad_reverse", "dann_lambda"]


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``-λ`` backward (Ganin et al. 2016, the gradient reversal layer)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lam: float) -> Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: Tensor, lam: float = 1.0) -> Tensor:
    """The gradient reversal layer ``R_λ``: ``R_λ(x) = x``, ``dR_λ/dx = −λ I``."""
    out: Tensor = GradientReversal.apply(x, float(lam))  # type: ignore[no-untyped-call]  # autograd.Function.apply is unannotated
    return out


def dann_lambda(progress: float, gamma: float = 10.0, lambda_max: float = 1.0) -> float:
    """``λ_p = λ_max (2 / (1 + exp(−γ p)) − 1)`` with training progress ``p ∈ [0, 1]`` (Ganin et al. 2016, their schedule with γ = 10)."""
    p = min(max(progress, 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class DANN(Method):
    """Domain-adversarial neural network on the model's shared representation.

    A discriminator ``d`` predicts the environment of each row from ``R_λ(z)``, with ``z`` the
    model's ``features`` and ``R_λ`` the gradient reversal layer; the loss is
    ``Σ_t w_t mean_e R_t^e + μ · CE(d(R_λ(z)), e)``: the discriminator minimises the
    environment cross-entropy while the representation maximises it (scaled by λ). λ follows
    the schedule of :func:`dann_lambda` over ``total_steps`` (set by the trainer; λ_max when
    unknown). One batch per environment; the environment label is the batch's position.
    """

    env_protocol: ClassVar[EnvProtocol] = "per_env"
    min_environments: ClassVar[int] = 2
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "n_environments": HParam(2, None, "number of environments the discriminator separates"),
        "disc_hidden": HParam((64,), None, "hidden widths of the discriminator MLP"),
        "gamma": HParam(10.0, None, "steepness γ of the λ schedule"),
        "lambda_max": HParam(1.0, log_uniform(1e-2, 1.0), "final reversal strength λ"),
        "weight": HParam(1.0, log_uniform(1e-1, 1e1), "weight μ of the discriminator loss"),
    }
    citation: ClassVar[str] = "Ganin et al., Domain-Adversarial Training of Neural Networks, JMLR 2016"

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        n_env = self.hparams["n_environments"]
        if not isinstance(n_env, int) or n_env < 2:
            raise ValueError(f"n_environments must be an int >= 2, got {n_env!r}")
        self.n_environments = n_env
        self._nonneg("gamma")
        self._nonneg("lambda_max")
        self._nonneg("weight")
        d = int(getattr(model, "feature_dim", 0) or 0)
        if d < 1:
            raise ValueError(f"DANN needs a model with a shared representation (feature_dim >= 1), got {d}")
        layers: list[nn.Module] = []
        for h in self.hparams["disc_hidden"]:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            d = int(h)
        layers.append(nn.Linear(d, n_env))
        self.discriminator = nn.Sequential(*layers)

    def reversal_strength(self) -> float:
        if not self.total_steps:
            return float(self.hparams["lambda_max"])
        return dann_lambda(self.steps / self.total_steps, float(self.hparams["gamma"]),
                           float(self.hparams["lambda_max"]))

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        if len(batches) != self.n_environments:
            raise ValueError(f"DANN was built for n_environments={self.n_environments}, got {len(batches)} batches")
        risks, out, which = self.env_risks(batches)
        if out.features is None:
            raise ValueError(f"{type(self.model).__name__}.forward_full returns no features; DANN needs them")
        task = self.task_loss(risks)
        logits = self.discriminator(grad_reverse(out.features.to(cast(nn.Linear, self.discriminator[-1]).weight.dtype),  # the MLP ends in a Linear
                                                 self.reversal_strength()))
        # mean over the (global, under data parallelism) batch: Σ CE / B
        disc = global_sum(nn.functional.cross_entropy(logits, which, reduction="sum")) / global_sum(
            logits.new_tensor(float(len(which))))
        loss = task + float(self.hparams["weight"]) * disc
        logs = {f"loss/{t.name}": risks[:, i].mean().detach() for i, t in enumerate(self.model.tasks)}
        logs.update({"task_loss": task.detach(), "disc_loss": disc.detach(), "loss": loss.detach()})
        return loss, logs
