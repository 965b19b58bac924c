"""Global-batch statistics for data-parallel training (issue 9; see ``docs/scaling.md``).

Under data parallelism each of ``W`` processes holds a shard of the global batch. The losses
of this library are smooth functions of *sums over rows* — masked risks
``R_t^e = Σ_i ℓ_it / Σ_i o_it``, Pearson moments, a discriminator's cross-entropy — and the
penalties of IRM and G-IRM are functions of *gradients* of such risks. A shard's mean is not
the global mean (shards differ in size and in missing labels), so averaging per-process
gradients of per-process losses is not the single-process update. Instead, inside
:func:`global_batch` (the trainer enters it around every ``method.update`` under
``torch.distributed``):

* :func:`global_sum` returns the sum over all processes, with value ``Σ_r s_r`` and gradient
  ``W · ∂s_r/∂θ`` with respect to this process's own contribution
  (``S = allreduce(s.detach()) + W (s − s.detach())``: no collective in the backward pass,
  and it survives ``create_graph=True`` double backward);
* :func:`global_gradient` turns ``∇_φ R`` of a globally summed risk — which, by the rule above,
  is ``W`` times this process's share — into the global gradient, differentiably;
* :func:`average_across_ranks` all-reduces an already-global quantity (per-task Jacobians).

Every process then computes the same global loss ``L``; its parameter gradient is
``∂L/∂θ|_direct + W · Σ_{its rows}``; the trainer averages parameter gradients over processes
(as DDP does), which gives exactly ``∂L/∂θ`` of the single-process global-batch loss:
parameter-only terms (MT-CRL's graph regularisers) are identical on every process and survive
the average, and the data terms are ``(1/W) Σ_r W · (share of r)``. The rule is exact when
``L`` depends on the data only through *first-level* global sums (no global sum of a quantity
that itself depends on another global sum's gradient path); :func:`global_sum` callers keep to
that (the Pearson mean is held fixed, which is exact because ``Σ_i (z_i − z̄) = 0``).

Outside :func:`global_batch` (single process, evaluation, any library call) every function
here is the identity, so the single-process code path is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = [
    "active",
    "world_size",
    "global_batch",
    "global_sum",
    "global_sums",
    "global_gradient",
    "average_across_ranks",
]

_GROUP: ProcessGroup | None = None
_WORLD = 1
_ACTIVE = False


def active() -> bool:
    """Whether a :func:`global_batch` context with more than one process is open."""
    return _ACTIVE


def world_size() -> int:
    """The number of processes of the open :func:`global_batch` context (1 outside)."""
    return _WORLD if _ACTIVE else 1


@contextmanager
def global_batch(group: ProcessGroup | None = None) -> Iterator[None]:
    """Make losses inside the block statistics of the global batch of ``group``.

    Parameters
    ----------
    group : a ``torch.distributed`` process group (default: the world); the process group
        must be initialised. With one process the block runs unchanged.
    """
    global _GROUP, _WORLD, _ACTIVE
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("global_batch needs an initialised torch.distributed process group")
    world = dist.get_world_size(group)
    prev = (_GROUP, _WORLD, _ACTIVE)
    _GROUP, _WORLD, _ACTIVE = group, world, world > 1
    try:
        yield
    finally:
        _GROUP, _WORLD, _ACTIVE = prev


def _all_reduce(x: Tensor) -> Tensor:
    import torch.distributed as dist

    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=_GROUP)
    return out


def global_sum(x: Tensor) -> Tensor:
    """``Σ_r x_r`` over the processes; gradient ``W`` with respect to this process's ``x``.

    Identity outside :func:`global_batch`. One ``all_reduce`` of ``x``'s size; no collective
    in the backward pass.
    """
    if not _ACTIVE:
        return x
    total = _all_reduce(x)
    if not x.requires_grad:
        return total
    return total + _WORLD * (x - x.detach())


def global_sums(*xs: Tensor) -> tuple[Tensor, ...]:
    """:func:`global_sum` of several tensors with ONE ``all_reduce`` (same dtype and device).

    Identity outside :func:`global_batch` (returns ``xs`` unchanged).
    """
    if not _ACTIVE:
        return xs
    flat = torch.cat([x.reshape(-1) for x in xs])
    total = _all_reduce(flat)
    if flat.requires_grad:
        total = total + _WORLD * (flat - flat.detach())
    out, offset = [], 0
    for x in xs:
        out.append(total[offset:offset + x.numel()].view_as(x))
        offset += x.numel()
    return tuple(out)


def global_gradient(g: Tensor) -> Tensor:
    """The global gradient ``∇_φ R`` from this process's ``g = ∇_φ R`` of a global-sum risk.

    Inside :func:`global_batch`, ``g`` is ``W`` times this process's share (see the module
    docstring); the result is ``Σ_r g_r / W`` with gradient ``∂g_r/∂θ`` per process, so a
    penalty built from it (IRM's ``‖∇_f R^e‖²``, G-IRM's graph gradients) is the penalty of
    the global batch. Identity outside.
    """
    if not _ACTIVE:
        return g
    return global_sum(g / _WORLD)


def average_across_ranks(x: Tensor) -> Tensor:
    """``(1/W) Σ_r x_r`` without gradient (for per-task Jacobians computed by ``autograd.grad``).

    Inside :func:`global_batch` the Jacobian of global-sum risks is ``W`` times a process's
    share, so the average is the global-batch Jacobian. Identity outside.
    """
    if not _ACTIVE:
        return x
    with torch.no_grad():
        return _all_reduce(x) / _WORLD
