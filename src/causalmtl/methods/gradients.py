"""Per-task gradients on the device, and writing a flat gradient back into ``.grad``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["per_task_gradients", "write_flat_grad", "flat_size"]


def flat_size(params: Sequence[nn.Parameter]) -> int:
    """Total number of scalars in ``params``."""
    return sum(p.numel() for p in params)


def _flatten(grads: Sequence[Tensor], n_rows: int) -> Tensor:
    return torch.cat([g.reshape(n_rows, -1) for g in grads], dim=1)


def per_task_gradients(
    losses: Tensor,
    params: Sequence[nn.Parameter],
    batched: bool | None = None,
    retain_graph: bool = False,
) -> tuple[Tensor, bool]:
    """The Jacobian ``G[t] = ∇_θ losses[t]`` flattened to ``(T, P)``, on the losses' device.

    ``batched=True`` computes all T rows with one vectorised reverse pass
    (``torch.autograd.grad(..., is_grads_batched=True)`` with the identity as cotangents);
    ``batched=False`` makes T ``autograd.grad`` calls (a loop over tasks, never over
    examples); ``None`` tries the batched form and falls back to the loop when an operator has
    no batching rule. Parameters a loss does not reach get zero rows. Returns the matrix and
    whether the batched form was used (pass it back next step to skip the probe).
    """
    n_tasks = losses.shape[0]
    params = list(params)
    if not params:
        return losses.new_zeros(n_tasks, 0), bool(batched)
    if batched is None or batched:
        try:
            eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
            grads = torch.autograd.grad(
                losses, params, grad_outputs=eye, is_grads_batched=True,
                retain_graph=True if batched is None else retain_graph,
                allow_unused=True, materialize_grads=True,
            )
            return _flatten(grads, n_tasks), True
        except RuntimeError as exc:  # an op without a vmap rule
            if batched:
                raise
            log.info("batched per-task gradients unavailable (%s); using one call per task", exc)
    rows = []
    for t in range(n_tasks):
        g = torch.autograd.grad(
            losses[t], params, retain_graph=retain_graph or t < n_tasks - 1,
            allow_unused=True, materialize_grads=True,
        )
        rows.append(torch.cat([x.reshape(-1) for x in g]))
    return torch.stack(rows), False


def write_flat_grad(params: Sequence[nn.Parameter], flat: Tensor, accumulate: bool = False) -> None:
    """Copy a flat ``(P,)`` gradient into the ``.grad`` of ``params`` (views; no host copy)."""
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset:offset + n].view_as(p).to(p.dtype)
        if accumulate and p.grad is not None:
            p.grad.add_(g)
        else:
            p.grad = g  # a view of ``flat`` (no copy); ``zero_grad(set_to_none=True)`` drops it
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat gradient has {flat.numel()} entries but the parameters hold {offset}")
