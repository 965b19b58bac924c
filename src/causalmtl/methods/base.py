"""The :class:`Method` base class: how one training step turns task losses into an update.

In the spirit of DomainBed, a method is an :class:`torch.nn.Module` that owns the model (and
any auxiliary network, e.g. DANN's discriminator) and exposes

* ``update(batches) -> dict[str, Tensor]``: one optimisation step. ``batches`` is a list of
  :class:`~causalmtl.methods.batch.Batch`: one pooled batch for methods whose
  :attr:`Method.env_protocol` is ``"pooled"``, otherwise one batch per training environment
  (position ``e`` in the list is environment ``e``; the first is the training split);
* ``predict(x) -> list[Tensor]``: the per-task outputs in eval mode without gradients.

The logged values are detached 0-d tensors (``float(v)`` gives the number) so that a step
never waits for the device; the trainer turns them into floats once per epoch.

Environment protocols (MT-CRL §4, "Experimental Setup")
------------------------------------------------------
``"pooled"``
    One batch drawn from all training environments together; the task loss uses every row
    (ERM, PCGrad, GradVac). Under the MT-CRL protocol the baselines train on train + valid.
``"per_env"``
    One batch per environment; the task loss is the mean over environments of the per-
    environment risks and a penalty compares environments (IRM, VREx, DANN).
``"per_env_train_loss"``
    One batch per environment; the task loss uses the first (training) environment only and
    the penalty uses all of them (MT-CRL: train and valid act as two environments while the
    task predictors never fit valid labels).

Hyperparameters
---------------
Each subclass lists its hyperparameters in :attr:`Method.HPARAMS` as
``name -> HParam(default, search sampler or None, description)`` (:mod:`causalmtl._hparams`;
the experiments derive their random-search space from it); the constructor takes them as keyword arguments and
rejects unknown names. ``method.hparams`` holds the resolved values.

Distributed training (issue 9)
------------------------------
Gradient-aggregating methods compute per-task gradients ``G`` (T × P) and call the pure
function :meth:`GradientMethod.aggregate`; :meth:`GradientMethod.reduce_gradients` is the hook
where a data-parallel wrapper all-reduces ``G`` (or per-environment quantities) *before*
aggregation. Loss-based methods expose ``objective``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .._hparams import HParam, defaults_of
from .._parallel import average_across_ranks
from ..nn.base import ModelInput, ModelOutput, MultiTaskModel
from .batch import Batch

EnvProtocol = Literal["pooled", "per_env", "per_env_train_loss"]
ENV_PROTOCOLS: tuple[str, ...] = ("pooled", "per_env", "per_env_train_loss")

__all__ = ["Method", "GradientMethod", "EnvProtocol", "ENV_PROTOCOLS", "cat_batches"]


def cat_batches(batches: Sequence[Batch]) -> tuple[Batch, Tensor]:
    """Concatenate batches; also return the ``(B,)`` index of the batch each row came from."""
    if len(batches) == 1:
        b = batches[0]
        return b, torch.zeros(len(b), dtype=torch.long, device=b.y.device)
    first = batches[0].x
    if isinstance(first, dict):
        x: ModelInput = {k: torch.cat([b.x[k] for b in batches]) for k in first}
    else:
        x = torch.cat([b.x for b in batches])  # type: ignore[misc]
    y = torch.cat([b.y for b in batches])
    env = torch.cat([b.env for b in batches])
    maps = {t: torch.cat([b.maps[t] for b in batches]) for t in batches[0].maps}
    sizes = torch.tensor([len(b) for b in batches], device=y.device)
    which = torch.repeat_interleave(torch.arange(len(batches), device=y.device), sizes)
    return Batch(x, y, env, maps), which


class Method(nn.Module):
    """Base class of the training methods (see the module docstring).

    Parameters
    ----------
    model : the multi-task model (see :class:`~causalmtl.nn.base.MultiTaskModel`)
    task_weights : optional weights ``w_t >= 0`` of the task losses (default all 1)
    **hparams : method hyperparameters, see :attr:`HPARAMS`

    Subclasses implement :meth:`objective` (a loss whose gradient is the update direction)
    or override :meth:`backward` (methods that manipulate gradients).
    """

    #: which batches ``update`` expects (see the module docstring)
    env_protocol: ClassVar[EnvProtocol] = "pooled"
    #: the least number of environments the method needs
    min_environments: ClassVar[int] = 1
    #: hyperparameters: name -> HParam(default, search sampler or None, description)
    HPARAMS: ClassVar[dict[str, HParam]] = {}
    #: per-task loss weights (a buffer, registered in ``__init__``)
    task_weights: Tensor
    #: the paper the method implements
    citation: ClassVar[str] = ""

    def __init__(
        self,
        model: MultiTaskModel,
        task_weights: Sequence[float] | None = None,
        **hparams: Any,
    ) -> None:
        super().__init__()
        if not isinstance(model, MultiTaskModel):
            raise ValueError(
                f"model must be a causalmtl.nn.MultiTaskModel, got {type(model).__name__}"
            )
        self.model = model
        unknown = sorted(set(hparams) - set(self.HPARAMS))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got unknown hyperparameter(s) {unknown}; "
                f"valid ones are {sorted(self.HPARAMS)}"
            )
        self.hparams: dict[str, Any] = defaults_of(self.HPARAMS)
        self.hparams.update(hparams)
        n_tasks = model.n_tasks
        if task_weights is None:
            w = torch.ones(n_tasks)
        else:
            w = torch.as_tensor([float(v) for v in task_weights], dtype=torch.float32)
            if w.shape != (n_tasks,) or not torch.isfinite(w).all() or (w < 0).any():
                raise ValueError(
                    f"task_weights must be {n_tasks} finite numbers >= 0 (one per task), "
                    f"got {list(task_weights)}"
                )
        self.register_buffer("task_weights", w)
        #: number of optimisation steps taken (saved with the state dict, as extra state)
        self.steps = 0
        self.optimizer: torch.optim.Optimizer | None = None
        #: total number of optimisation steps planned (set by the trainer; schedules use it)
        self.total_steps: int | None = None
        self._amp_dtype: torch.dtype | None = None

    # --- hyperparameters ---------------------------------------------------------------
    @classmethod
    def default_hparams(cls) -> dict[str, Any]:
        """The default hyperparameters of this method."""
        return defaults_of(cls.HPARAMS)

    def _nonneg(self, name: str) -> float:
        v = float(self.hparams[name])
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{type(self).__name__}: {name} must be a finite number >= 0, got {self.hparams[name]!r}")
        return v

    # --- wiring by the trainer ------------------------------------------------------------
    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups: the model's groups plus the method's own networks."""
        groups = self.model.param_groups(lr)
        in_model = {id(p) for p in self.model.parameters()}
        own = [p for p in self.parameters() if id(p) not in in_model]
        if own:
            groups.append({"params": own, "lr": lr})
        return groups

    def configure_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Attach the optimiser ``update`` steps (the trainer builds it from ``param_groups``)."""
        self.optimizer = optimizer

    def set_amp(self, dtype: torch.dtype | None) -> None:
        """Run forward passes under ``torch.autocast`` with ``dtype`` (``None``: off)."""
        self._amp_dtype = dtype

    def autocast(self) -> AbstractContextManager[Any]:
        """The autocast context for forward passes (a no-op unless :meth:`set_amp` enabled it)."""
        if self._amp_dtype is None:
            return nullcontext()
        dev = self.task_weights.device.type
        return torch.autocast(device_type=dev, dtype=self._amp_dtype)

    # --- the step ------------------------------------------------------------------------
    def check_batches(self, batches: Sequence[Batch]) -> None:
        """Raise ``ValueError`` when the batches do not fit :attr:`env_protocol`."""
        if len(batches) == 0:
            raise ValueError(f"{type(self).__name__}.update got no batches")
        if self.env_protocol == "pooled" and len(batches) != 1:
            raise ValueError(
                f"{type(self).__name__} uses the 'pooled' protocol and expects one batch, got {len(batches)}"
            )
        if len(batches) < self.min_environments:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_environments} environments "
                f"(one batch each), got {len(batches)}"
            )
        for e, b in enumerate(batches):
            if len(b) == 0:
                raise ValueError(f"environment {e} has no examples in this step's batches; "
                                 f"{type(self).__name__} needs every environment")

    def update(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        """One optimisation step on ``batches``; returns detached 0-d tensors to log."""
        if self.optimizer is None:
            raise RuntimeError(
                f"{type(self).__name__}.update needs an optimizer: call configure_optimizer "
                "(the Trainer does this)"
            )
        self.check_batches(batches)
        self.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs = self.backward(batches)
        self.optimizer.step()
        self.steps += 1
        return logs

    def backward(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        """Fill ``.grad`` of every trainable parameter for this step; return logs.

        The default differentiates :meth:`objective`.
        """
        loss, logs = self.objective(batches)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        return logs

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar training loss of a step and the values to log."""
        raise NotImplementedError(f"{type(self).__name__} must implement objective or backward")

    # --- helpers for subclasses ------------------------------------------------------------
    def forward_full(self, x: ModelInput) -> ModelOutput:
        """The model's :class:`ModelOutput` under the method's autocast setting."""
        with self.autocast():
            return self.model.forward_full(x)

    def env_risks(self, batches: Sequence[Batch]) -> tuple[Tensor, ModelOutput, Tensor]:
        """Per-environment, per-task risks ``R_t^e`` ``(E, T)`` from one forward pass.

        Returns the risks, the model output on the concatenated batch and the ``(B,)``
        environment position of each row.
        """
        batch, which = cat_batches(batches)
        out = self.forward_full(batch.x)
        risks = self.model.task_losses(out, batch.y, which, len(batches), maps=batch.maps)
        return risks, out, which

    def task_loss(self, risks: Tensor) -> Tensor:
        """The weighted task loss ``Σ_t w_t R_t`` from risks ``(T,)`` or ``(E, T)``.

        With per-environment risks the task loss is the mean over environments for
        ``"per_env"`` and the first environment only for ``"per_env_train_loss"``.
        """
        if risks.ndim == 2:
            risks = risks[0] if self.env_protocol == "per_env_train_loss" else risks.mean(0)
        return (risks * self.task_weights).sum()

    @torch.no_grad()
    def predict(self, x: ModelInput) -> list[Tensor]:
        """Per-task outputs (log-probabilities / regression values) in eval mode."""
        was = self.training
        self.eval()
        try:
            with self.autocast():
                out = self.model(x)
            return [o.float() for o in out]
        finally:
            self.train(was)

    def forward(self, x: ModelInput) -> list[Tensor]:
        out: list[Tensor] = self.model(x)
        return out

    def get_extra_state(self) -> dict[str, Any]:
        """Non-tensor state saved in ``state_dict`` (subclasses extend the dict)."""
        return {"steps": self.steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])

    def config(self) -> dict[str, Any]:
        """A JSON-able description (method, hyperparameters, model) for checkpoint checks."""
        return {
            "method": type(self).__name__,
            "hparams": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                        for k, v in self.hparams.items()},
            "task_weights": self.task_weights.tolist(),
            "model": self.model.config(),
        }


class GradientMethod(Method):
    """A method that combines per-task gradients of the shared parameters (PCGrad, GradVac).

    One step: per-task risks ``R_t`` on the pooled batch; per-task gradients
    ``G[t] = ∇_θ w_t R_t`` of the shared parameters θ (``T × P``, computed on the device
    with one vectorised ``torch.autograd.grad`` call over the T tasks, or T calls when the
    batched Jacobian is unavailable); ``G = reduce_gradients(G)`` (identity; the DDP hook);
    the shared update ``g = aggregate(G)``; task-specific parameters (heads) receive their
    own task's gradient, unchanged.
    """

    #: (trainable-parameter ids, shared, own), computed at the first step (:meth:`_partition`)
    _partition_cache: tuple[tuple[int, ...], list[nn.Parameter], list[nn.Parameter]] | None
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "jacobian": HParam("auto", None, "how per-task gradients are computed: 'batched' (one vmapped "
                     "autograd.grad), 'loop' (T autograd.grad calls) or 'auto' (loop on CPU, "
                     "where it measured faster; batched on CUDA, falling back to loop)"),
    }

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        if self.hparams["jacobian"] not in ("auto", "batched", "loop"):
            raise ValueError(f"jacobian must be 'auto', 'batched' or 'loop', got {self.hparams['jacobian']!r}")
        self._batched_ok: bool | None = None if self.hparams["jacobian"] == "auto" else (
            self.hparams["jacobian"] == "batched")
        self._jacobian_decided = self.hparams["jacobian"] != "auto"

    def _partition(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """Trainable shared parameters and all other trainable ones.

        Computed at the first step and cached; call :meth:`reset_partition` after freezing or
        unfreezing parameters.
        """
        cached = getattr(self, "_partition_cache", None)
        if cached is None:
            key = tuple(id(p) for p in self.parameters() if p.requires_grad)
            shared = [p for p in self.model.shared_parameters() if p.requires_grad]
            ids = {id(q) for q in shared}
            own = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
            cached = (key, shared, own)
            self._partition_cache = cached
        return cached[1], cached[2]

    def reset_partition(self) -> None:
        """Forget the cached parameter partition (after changing ``requires_grad``)."""
        self._partition_cache = None

    def reduce_gradients(self, grads: Tensor) -> Tensor:
        """Hook for data-parallel training: all-reduce per-task gradients ``(T, P)``.

        Under the trainer's data-parallel mode the risks are global-batch risks, so each
        process's Jacobian is ``W`` times its share and the average over processes is the
        global-batch Jacobian (identity in one process; see :mod:`causalmtl._parallel`).
        """
        return average_across_ranks(grads)

    def aggregate(self, grads: Tensor) -> Tensor:
        """Combine per-task shared gradients ``(T, P)`` into one update direction ``(P,)``."""
        raise NotImplementedError

    def backward(self, batches: Sequence[Batch]) -> dict[str, Tensor]:
        from .gradients import per_task_gradients, write_flat_grad

        risks, _, _ = self.env_risks(batches)
        risks = risks[0]
        weighted = risks * self.task_weights
        shared, own = self._partition()
        params = shared + own
        if not self._jacobian_decided:
            # measured: T reverse passes beat one vmapped pass on CPU; on CUDA vmap pays
            self._batched_ok = None if weighted.device.type == "cuda" else False
            self._jacobian_decided = True
        jac, self._batched_ok = per_task_gradients(weighted, params, self._batched_ok)
        n_shared = sum(p.numel() for p in shared)
        if shared:
            g_shared = self.aggregate(self.reduce_gradients(jac[:, :n_shared]))
            write_flat_grad(shared, g_shared)
        if own:
            write_flat_grad(own, jac[:, n_shared:].sum(0))
        logs = {f"loss/{t.name}": risks[i].detach() for i, t in enumerate(self.model.tasks)}
        logs["loss"] = weighted.sum().detach()
        return logs
