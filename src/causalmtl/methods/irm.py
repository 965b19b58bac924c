"""IRM adapted to multi-task learning with per-task predictors (MT-CRL Eq. 6).

Two exact ways to compute the penalty ``Σ_e Σ_t ‖∇_{f_t} R_t^e‖²``:

* :func:`irm_penalty` — any predictor: one ``autograd.grad(..., create_graph=True)`` per
  environment; the penalty's backward is a double backward through the heads;
* :func:`irm_penalty_linear_heads` — linear heads (the default :class:`ClassificationHead` /
  :class:`RegressionHead` without hidden layers): ``∇_{W_t} R_t^e = (1/n_te) Σ_{i∈e} g_it h_itᵀ``
  and ``∇_{b_t} R_t^e = (1/n_te) Σ_{i∈e} g_it`` in closed form, with ``h_it`` the head input and
  ``g_it`` the derivative of the row loss with respect to the head's linear output
  (``softmax − onehot(y)`` for the negative log-likelihood of ``log_softmax``, ``2(ŷ − y)`` for the
  squared error, 0 for a missing label). Only first-order expressions: no double backward.

:class:`IRM` uses the closed form when every task's predictor is such a head and the autograd
path otherwise (MLP heads, FPS's shared predictor, STL's per-task encoders, custom losses).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._hparams import HParam, choice, log_uniform
from .._parallel import global_gradient, global_sums
from ..data.base import Task
from ..nn.base import MultiTaskModel, loss_precision
from ..nn.heads import ClassificationHead, RegressionHead
from ._penalty import annealed_weight, maybe_reset_optimizer
from .base import EnvProtocol, Method, cat_batches
from .batch import Batch

__all__ = ["IRM", "half_index", "irm_penalty", "irm_penalty_linear_heads", "linear_heads"]

PENALTY_PATHS: tuple[str, ...] = ("auto", "autograd")
ESTIMATORS: tuple[str, ...] = ("full", "split")


def irm_penalty(env_risks: Tensor, predictor_params: Sequence[torch.nn.Parameter], split: bool = False) -> Tensor:
    """``Σ_e Σ_t ‖∇_{f_t} R_t^e‖²`` (MT-CRL Eq. 6, the baseline's penalty), differentiable.

    ``env_risks`` is ``(E, T)``. Because ``R_t^e`` depends on the predictor parameters of task
    ``t`` only, one ``autograd.grad`` of ``Σ_t R_t^e`` per environment gives every task's
    gradient at once (``create_graph=True``), and its squared norm equals the double sum over
    tasks. For a model whose predictor is shared by all tasks (FPS), it is the original IRM
    penalty ``Σ_e ‖∇_f Σ_t R_t^e‖²`` of that single predictor.

    With ``split=True`` the rows of ``env_risks`` are ``2E`` half-batch risks, environment
    ``e``'s two halves at rows ``2e`` and ``2e + 1``, and the penalty is the unbiased
    split-batch estimator ``Σ_e Σ_t ⟨∇_{f_t} R_t^{e,1}, ∇_{f_t} R_t^{e,2}⟩`` (Arjovsky et al.
    2019, §3.2 / App. D: the product of two independent gradient estimates has expectation
    ``‖∇R‖²``, where the squared norm of one estimate adds its variance).
    """
    params = [p for p in predictor_params if p.requires_grad]
    if not params:
        raise ValueError("IRM needs predictor parameters (task heads); the model has none")
    if split and env_risks.shape[0] % 2:
        raise ValueError(f"split=True needs 2 rows (two halves) per environment, got {env_risks.shape[0]} rows")
    flat = []
    for e in range(env_risks.shape[0]):
        grads = torch.autograd.grad(env_risks[e].sum(), params, create_graph=True, allow_unused=True)
        grads = tuple(None if g is None else global_gradient(g) for g in grads)  # data-parallel
        flat.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]))
    g = torch.stack(flat)  # (E or 2E, P)
    if split:
        return (g[0::2] * g[1::2]).sum()
    return g.square().sum()


def half_index(which: Tensor, n_groups: int) -> Tensor:
    """``2·which + h``: each environment's rows alternately in half ``h = 0`` and ``h = 1``.

    The rank of a row within its environment is counted by a cumulative sum of one-hot rows
    (vectorised); batches are drawn at random, so alternate rows are two independent halves.
    """
    onehot = torch.nn.functional.one_hot(which, n_groups)
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1
    return 2 * which + rank % 2


def irm_penalty_linear_heads(
    head_inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    y: Tensor,
    tasks: Sequence[Task],
    group: Tensor,
    n_groups: int,
    split: bool = False,
) -> Tensor:
    """MT-CRL Eq. (6) ``Σ_e Σ_t ‖∇_{W_t,b_t} R_t^e‖²`` for linear heads, in closed form.

    For a head ``z = W h + b`` followed by ``log_softmax`` (classification, NLL) or the
    identity (regression, squared error) and the masked risk
    ``R_t^e = (1/n_te) Σ_{i∈e, y_it observed} ℓ(z_it, y_it)`` of
    :func:`~causalmtl.nn.base.grouped_risks`,

    ``∇_W R_t^e = M_te[:, :d] = (1/n_te) Σ_{i∈e} g_it h_itᵀ``, ``∇_b R_t^e = (1/n_te) Σ_{i∈e} g_it``

    with ``g_it = ∂ℓ/∂z = exp(out_it) − onehot(y_it)`` (``out`` the log-probabilities) or
    ``2(ŷ_it − y_it)``, and ``g_it = 0`` for a missing label. The penalty is
    ``Σ_{t,e} ‖M_te‖_F²``, a first-order differentiable function of the outputs and the head
    inputs, whose value and gradient equal :func:`irm_penalty`'s (the arithmetic follows
    :func:`~causalmtl.nn.base.row_losses`: squared errors and ``1/n`` in the loss precision,
    :func:`~causalmtl.nn.base.loss_precision`).
    Under data parallelism the counts ``n_te`` and the matrices ``M_te`` are global sums
    (:func:`~causalmtl._parallel.global_sums`; identity in one process).

    Parameters
    ----------
    head_inputs : T tensors ``(B, d_t)``, the input of each task's linear head
    outputs : T tensors, the heads' outputs: log-probabilities ``(B, C_t)`` or values ``(B,)``
    y : ``(B, T)`` targets, ``NaN`` where missing
    tasks : the T tasks (kind, class count)
    group : ``(B,)`` environment index of each row in ``[0, n_groups)``
    n_groups : number of environments E (``2E`` half-batches with ``split=True``)
    split : the unbiased split-batch estimator: groups ``2e`` and ``2e + 1`` are two halves of
        environment ``e`` (see :func:`half_index`) and the penalty is
        ``Σ_{t,e} ⟨M_te^(1), M_te^(2)⟩`` instead of ``Σ_{t,e} ‖M_te‖_F²``
    """
    if split and n_groups % 2:
        raise ValueError(f"split=True needs 2 groups (two halves) per environment, got n_groups={n_groups}")
    if not (len(head_inputs) == len(outputs) == len(tasks) == y.shape[1]):
        raise ValueError(f"head_inputs ({len(head_inputs)}), outputs ({len(outputs)}), tasks ({len(tasks)}) "
                         f"and y's columns ({y.shape[1]}) must all be one per task")
    n_rows, n_tasks = y.shape
    observed = ~torch.isnan(y)
    y0 = torch.where(observed, y, torch.zeros((), dtype=y.dtype, device=y.device))
    labels = y0.long()
    # grouped_risks counts in the loss dtype (float32, or float64 for float64 outputs)
    dtype = torch.float64 if any(loss_precision(o).dtype == torch.float64 for o in outputs) else torch.float32
    env = torch.zeros(n_rows, n_groups, dtype=dtype, device=y.device).scatter_(1, group[:, None], 1.0)  # (B, E)
    obs = observed.to(dtype)
    (count,) = global_sums(env.T @ obs)  # n_te, (E, T): exact sums of ones; global under data parallelism
    scale = (env @ (1.0 / count.clamp(min=1))) * obs  # 1/n_te of the row's environment, 0 if unlabelled
    # g[i, t, :] = ∂ℓ_it/∂z_it · 1/n_te, zero-padded to the widest head, (B, T, C)
    if (all(t.kind == "classification" for t in tasks) and len({o.shape for o in outputs}) == 1
            and len({o.dtype for o in outputs}) == 1):
        out = torch.stack(list(outputs), 1)
        s = scale.to(out.dtype)[:, :, None]
        g = (out.exp() * s).scatter_add(2, labels[:, :, None], -s)  # (softmax − onehot) / n
    else:
        width = max(o.shape[-1] if t.kind == "classification" else 1 for o, t in zip(outputs, tasks))
        cols = []
        for t, (out, task) in enumerate(zip(outputs, tasks)):
            if task.kind == "classification":
                s = scale[:, t, None].to(out.dtype)
                gt = (out.exp() * s).scatter_add(1, labels[:, t, None], -s)
            else:  # the squared error's derivative in the loss precision, as row_losses computes it
                pred = loss_precision(out).reshape(n_rows)
                gt = (scale[:, t] * (2 * (pred - y0[:, t].to(pred.dtype)))).to(out.dtype)[:, None]
            cols.append(nn.functional.pad(gt, (0, width - gt.shape[1])))
        g = torch.stack(cols, 1)
    h0 = head_inputs[0]
    work = h0.dtype
    a = env.to(work)[:, :, None, None] * g.to(work)[:, None]  # per environment, (B, E, T, C)
    bias = a.sum(0)  # ∇_b R_t^e, (E, T, C)
    if all(h is h0 for h in head_inputs):  # one representation for all heads (shared trunk)
        weight = (a.reshape(n_rows, -1).T @ h0).reshape(n_groups, -1)  # ∇_W R_t^e, (E, T·C·d)
    elif len({(h.shape, h.dtype) for h in head_inputs}) == 1:  # e.g. MMoE's per-task mixtures
        at = a.permute(2, 1, 3, 0).reshape(n_tasks, -1, n_rows)  # (T, E·C, B)
        weight = torch.bmm(at, torch.stack(list(head_inputs)))  # (T, E·C, d)
        weight = weight.reshape(n_tasks, n_groups, -1).transpose(0, 1).reshape(n_groups, -1)
    else:
        weight = torch.cat([(a[:, :, t].reshape(n_rows, -1).T @ h.to(work)).reshape(n_groups, -1)
                            for t, h in enumerate(head_inputs)], dim=1)
    weight, bias = global_sums(weight, bias)  # data parallel: sums over the global batch
    grads = torch.cat([weight, bias.reshape(n_groups, -1)], dim=1)  # (E, P): every ∇_{f_t} R_t^e
    if split:
        return (grads[0::2] * grads[1::2]).sum()
    return grads.square().sum()


def linear_heads(model: MultiTaskModel) -> list[nn.Module] | None:
    """The T heads when :func:`irm_penalty_linear_heads` applies to ``model``, else ``None``.

    It applies when the IRM predictors (``model.predictor_parameters()``, all trainable) are
    exactly the parameters of ``model.heads``, each head is a :class:`ClassificationHead` or
    :class:`RegressionHead` (of its task's kind) with one ``nn.Linear`` and no hidden layer, and
    the model keeps the default losses (:meth:`MultiTaskModel.row_losses`, ``task_losses``).
    """
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleList) or len(heads) != model.n_tasks:
        return None
    cls = type(model)
    if cls.row_losses is not MultiTaskModel.row_losses or cls.task_losses is not MultiTaskModel.task_losses:
        return None
    if len({id(h) for h in heads}) != len(heads):
        return None
    for head, task in zip(heads, model.tasks):
        if task.is_dense:  # the closed form covers per-row scalar outputs only
            return None
        want = ClassificationHead if task.kind == "classification" else RegressionHead
        if type(head) is not want or len(head.net) != 1 or type(head.net[0]) is not nn.Linear:
            return None
    head_params = [p for h in heads for p in h.parameters()]
    predictors = model.predictor_parameters()
    if not all(p.requires_grad for p in head_params) or not all(p.requires_grad for p in predictors):
        return None
    if {id(p) for p in head_params} != {id(p) for p in predictors} or len(head_params) != len(predictors):
        return None
    return list(heads)


def _record(store: list[tuple[Tensor, Tensor]], module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
    store.append((args[0], output))


@contextmanager
def _recording(heads: Sequence[nn.Module]) -> Iterator[list[list[tuple[Tensor, Tensor]]]]:
    """Record ``(input, output)`` of every call of each head inside the block."""
    stores: list[list[tuple[Tensor, Tensor]]] = [[] for _ in heads]
    handles = [h.register_forward_hook(partial(_record, s)) for h, s in zip(heads, stores)]
    try:
        yield stores
    finally:
        for handle in handles:
            handle.remove()


class IRM(Method):
    """Invariant risk minimisation with per-task predictors (Arjovsky et al. 2019; MT-CRL Eq. 6).

    Loss: ``Σ_t w_t mean_e R_t^e + λ_s Σ_t Σ_e ‖∇_{f_t} R_t^e‖²`` where ``f_t`` is task ``t``'s
    predictor (its head; MT-CRL §4 "For IRM we adopt different per-task predictors instead of
    all-one vector … and calculate penalty via Eq. (6)"). The weight ``λ_s`` is ``warmup`` for
    the first ``anneal_steps`` steps and ``lambda`` afterwards; Adam's moments are reset when
    it jumps (DomainBed). One batch per environment (at least two).

    With ``penalty="auto"`` (default) linear heads get the closed-form penalty
    (:func:`irm_penalty_linear_heads`, same value and gradient, no double backward); other
    predictors, or ``penalty="autograd"``, use :func:`irm_penalty`.
    """

    env_protocol: ClassVar[EnvProtocol] = "per_env"
    min_environments: ClassVar[int] = 2
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "lambda": HParam(1.0, log_uniform(1e-2, 1e2), "penalty weight after annealing"),
        "anneal_steps": HParam(0, choice([0, 50, 100, 500]), "steps with the warm-up weight before switching to lambda"),
        "warmup": HParam(1.0, None, "penalty weight during annealing"),
        "reset_optimizer": HParam(True, None, "clear Adam's moments when the weight switches"),
        "penalty": HParam("auto", None, "'auto': closed form for linear heads, autograd otherwise; "
                    "'autograd': always the double backward (same value)"),
        "estimator": HParam("full", None, "'full': Eq. (6), the squared norm of each environment's batch gradient "
                      "(biased upward by the gradient's variance); 'split': the unbiased split-batch "
                      "estimator, the product of the gradients on two halves of the batch"),
    }
    citation: ClassVar[str] = ("Arjovsky et al., Invariant Risk Minimization, 2019; per-task form of "
                               "Hu et al., MT-CRL, NeurIPS 2022, Eq. (6)")

    def __init__(self, model: MultiTaskModel, task_weights: Sequence[float] | None = None, **hparams: Any) -> None:
        super().__init__(model, task_weights, **hparams)
        self._nonneg("lambda")
        self._nonneg("warmup")
        if int(self.hparams["anneal_steps"]) < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.hparams['anneal_steps']!r}")
        if self.hparams["penalty"] not in PENALTY_PATHS:
            raise ValueError(f"penalty must be one of {PENALTY_PATHS}, got {self.hparams['penalty']!r}")
        if self.hparams["estimator"] not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.hparams['estimator']!r}")
        #: whether the last step used the closed-form penalty
        self.used_closed_form = False
        self._heads_cache: tuple[list[nn.Module], list[nn.Parameter]] | None = None

    def _linear_heads(self) -> list[nn.Module] | None:
        """:func:`linear_heads` of the model, checked once and then only for replaced or frozen heads."""
        if self.hparams["penalty"] != "auto":
            return None
        if self._heads_cache is not None:
            heads, params = self._heads_cache
            now = getattr(self.model, "heads", None)
            if (now is not None and len(now) == len(heads) and all(a is b for a, b in zip(now, heads))
                    and all(p.requires_grad for p in params)):
                return heads
        found = linear_heads(self.model)
        self._heads_cache = None if found is None else (found, [p for h in found for p in h.parameters()])
        return found

    def penalty_weight(self) -> float:
        return annealed_weight(self.steps, float(self.hparams["lambda"]), int(self.hparams["anneal_steps"]),
                               float(self.hparams["warmup"]))

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        maybe_reset_optimizer(self.optimizer, self.steps, int(self.hparams["anneal_steps"]),
                              bool(self.hparams["reset_optimizer"]))
        heads = self._linear_heads()
        batch, which = cat_batches(batches)
        if heads is None:
            out = self.forward_full(batch.x)
        else:
            with _recording(heads) as calls:
                out = self.forward_full(batch.x)
        risks = self.model.task_losses(out, batch.y, which, len(batches), maps=batch.maps)
        task = self.task_loss(risks)
        split = self.hparams["estimator"] == "split"
        group, n_groups = (half_index(which, len(batches)), 2 * len(batches)) if split else (which, len(batches))
        # the closed form needs each head called once, its output being the task's output
        self.used_closed_form = heads is not None and all(
            len(c) == 1 and c[0][1] is o for c, o in zip(calls, out.outputs))
        if self.used_closed_form:
            penalty = irm_penalty_linear_heads([c[0][0] for c in calls], out.outputs, batch.y,
                                               self.model.tasks, group, n_groups, split=split)
        else:
            half_risks = self.model.task_losses(out, batch.y, group, n_groups) if split else risks
            penalty = irm_penalty(half_risks, self.model.predictor_parameters(), split=split)
        loss = task + self.penalty_weight() * penalty
        logs = {f"loss/{t.name}": risks[:, i].mean().detach() for i, t in enumerate(self.model.tasks)}
        logs.update({"task_loss": task.detach(), "penalty": penalty.detach(), "loss": loss.detach()})
        return loss, logs
