"""Data-parallel training on ``torch.distributed`` (torchrun), used by the :class:`Trainer`.

The trainer calls :func:`setup` at the start of ``fit``. In a single process it returns a
:class:`SingleProcess` whose hooks do nothing; when the process was started by ``torchrun``
(``WORLD_SIZE > 1`` in the environment) or a process group is already initialised, it
initialises the group if needed (``gloo`` on CPU, ``nccl`` on CUDA, ``env://``
rendezvous, so every ``torchrun`` option — several nodes, ``--rdzv-backend`` — works) and
returns a :class:`DataParallel` that

* maps ``device="cuda"`` to ``cuda:LOCAL_RANK`` and makes it the current device;
* broadcasts rank 0's weights and buffers to every process (as ``DistributedDataParallel``
  does at construction), once per ``fit``;
* shards every step's batch of every environment: the trainer draws the *global* batch plan
  from the seed exactly as in one process (``batch_size`` is the global batch) and process
  ``r`` takes rows ``r, r + W, r + 2W, …`` of it (what ``DistributedSampler`` does, without
  its padding, so the global batch is exactly the single-process batch);
* runs ``method.update`` inside :func:`causalmtl._parallel.global_batch`, so risks and
  penalties are those of the global batch, and averages every parameter gradient over the
  processes before the optimiser steps (an optimiser step pre-hook; one flat ``all_reduce``
  per step, like DDP's buckets). Per-task Jacobians (PCGrad, GradVac) are all-reduced before
  aggregation by :meth:`GradientMethod.reduce_gradients`; see ``docs/scaling.md`` per method;
* evaluates the validation split sharded, all-reducing loss sums, label counts and correct
  counts (the metrics are those of the whole split, identical on every process);
* averages the epoch's training logs; lets rank 0 alone write checkpoints, TensorBoard and
  progress bars; and puts barriers where another process could otherwise read a checkpoint
  that is being written (resume) or remove one (cleanup).

``DistributedDataParallel`` itself is not used: its reducer hooks fire on ``loss.backward()``
of a module called through the wrapper, while the per-task and per-environment methods take
gradients with ``torch.autograd.grad`` (Jacobians, ``create_graph=True`` penalties) on the
model's own entry points; the gradient average here is the same collective at the same place.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup
    from torch.utils.hooks import RemovableHandle

from .. import _parallel
from ..data.base import MultiTaskDataset
from ..methods.batch import Batch
from ..nn.base import MultiTaskModel
from .evaluate import _accumulate, _dense_results, evaluate
from .streaming import eval_batches

log = logging.getLogger(__name__)
_T = TypeVar("_T")

__all__ = [
    "DataParallel",
    "SingleProcess",
    "setup",
    "env_world_size",
    "is_main_process",
    "shard_rows",
    "broadcast_object",
]


def env_world_size() -> int:
    """``WORLD_SIZE`` set by ``torchrun`` (1 when absent)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(value)
    except ValueError:
        raise ValueError(f"environment variable WORLD_SIZE must be an int, got {value!r}") from None
    if world < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1, got {world}")
    return world


def is_main_process() -> bool:
    """True in a single process and on rank 0 of an initialised (or torchrun) process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shard_rows(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rows ``rank, rank + world, …`` of a global batch (``DistributedSampler``'s split, no padding)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    return np.asarray(rows)[rank::world]


class SingleProcess:
    """The trainer's hooks in one process: all of them do nothing."""

    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, method: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        return None

    def shard_plans(self, plans: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        return plans

    def step_context(self) -> AbstractContextManager[None]:
        return nullcontext()

    def reduce_logs(self, sums: dict[str, Tensor]) -> dict[str, Tensor]:
        return sums

    def evaluate(self, model: MultiTaskModel, data: Batch | MultiTaskDataset, batch_size: int,
                 task_weights: Tensor | None) -> dict[str, float]:
        return evaluate(model, data, batch_size, device=self.device, task_weights=task_weights)

    def barrier(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class DataParallel:
    """The trainer's hooks under ``torch.distributed`` (see the module docstring)."""

    rank: int
    world_size: int
    device: torch.device
    group: ProcessGroup | None = None
    _hook: RemovableHandle | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- wiring ------------------------------------------------------------------------
    def prepare(self, method: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Broadcast rank 0's state; average gradients over processes before every step."""
        import torch.distributed as dist

        with torch.no_grad():
            tensors = [t for t in (*method.parameters(), *method.buffers()) if t.numel()]
            if tensors:
                flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
                dist.broadcast(flat, src=0, group=self.group)
                offset = 0
                for t in tensors:
                    n = t.numel()
                    t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
                    offset += n
        self.close()
        self._hook = optimizer.register_step_pre_hook(self._average_gradients)

    def _average_gradients(self, optimizer: torch.optim.Optimizer, *args: object) -> None:
        import torch.distributed as dist

        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat /= self.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def close(self) -> None:
        """Remove the gradient hook (the optimiser may outlive the run)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # --- data --------------------------------------------------------------------------
    def shard_plans(self, plans: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """This process's rows of every step of every group's epoch plan.

        Raises ``ValueError`` when a step's global batch has fewer rows than processes: a
        process would get an empty batch and the update could not equal the global one.
        """
        for g, plan in enumerate(plans):
            for s, rows in enumerate(plan):
                if len(rows) < self.world_size:
                    raise ValueError(
                        f"step {s} of environment group {g} has a global batch of {len(rows)} rows, "
                        f"fewer than the {self.world_size} processes; choose batch_size or "
                        "steps_per_epoch so that every global batch has at least one row per process"
                    )
        return [[shard_rows(rows, self.rank, self.world_size) for rows in plan] for plan in plans]

    @contextmanager
    def step_context(self) -> Iterator[None]:
        with _parallel.global_batch(self.group):
            yield

    def reduce_logs(self, sums: dict[str, Tensor]) -> dict[str, Tensor]:
        """The epoch's summed logs averaged over processes (one ``all_reduce``)."""
        import torch.distributed as dist

        if not sums:
            return sums
        keys = sorted(sums)
        flat = torch.stack([sums[k].detach().float().reshape(()) for k in keys])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat /= self.world_size
        return dict(zip(keys, flat.unbind()))

    def evaluate(self, model: MultiTaskModel, data: Batch | MultiTaskDataset, batch_size: int,
                 task_weights: Tensor | None) -> dict[str, float]:
        """:func:`~causalmtl.train.evaluate` of the whole ``data``, each process a shard."""
        import torch.distributed as dist

        rows = np.arange(self.rank, len(data), self.world_size)
        was = model.training
        model.eval()
        try:
            acc = _accumulate(model, eval_batches(data, batch_size, self.device, rows), self.device,
                              task_weights)
        finally:
            model.train(was)
        loss_sum = acc["risk"] * acc["count"].clamp(min=1)
        stats = torch.stack([loss_sum, acc["count"], acc["correct"]])
        dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=self.group)
        for dense_acc in acc["dense"].values():  # split-level dense metrics: sum every rank's state
            for tensor in dense_acc.state_tensors(self.device):
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        loss_sum, count, correct = stats.unbind()
        risk = loss_sum / count.clamp(min=1)
        w = torch.ones_like(risk) if task_weights is None else task_weights.to(risk)
        risk_h, count_h, correct_h = (v.cpu().numpy() for v in (risk, count, correct))
        out = {"loss": float((risk * w).sum())}
        for t, task in enumerate(model.tasks):
            out[f"loss/{task.name}"] = float(risk_h[t]) if count_h[t] > 0 else float("nan")
            if task.kind == "classification":
                out[f"acc/{task.name}"] = float(correct_h[t] / count_h[t]) if count_h[t] > 0 else float("nan")
        out.update(_dense_results(model, acc["dense"]))
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(group=self.group, device_ids=[self.device.index or 0])
        else:
            dist.barrier(group=self.group)


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _import_before_group() -> None:
    """Import ``torch._dynamo`` before the process group exists.

    The first optimiser built in a process imports ``torch._dynamo`` (hundreds of modules);
    done while a group exists, that import keeps a reference to it, so
    ``destroy_process_group`` no longer frees the group and its gloo worker threads outlive
    it. At interpreter exit such a worker could still be dropping the last collective's work,
    whose tensors are Python objects: it waits for the GIL, Python finalisation ends the
    thread from inside a ``noexcept`` destructor, and the process aborts ("terminate called
    without an active exception", SIGABRT) after all its work was done — about one 2-rank run
    in ten here (found with a core dump: ``ProcessGroupGloo::runLoop`` →
    ``~AsyncBarrierWork`` → ``~AsyncBroadcastWork`` → ``TensorImpl::decref_pyobject`` →
    ``take_gil`` → ``pthread_exit`` → ``std::terminate``). Imported first, the group is
    freed by ``destroy_process_group`` and its threads joined while Python is alive.
    """
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # pragma: no cover - a build without dynamo: nothing holds the group then
        log.debug("torch._dynamo is not importable; skipped", exc_info=True)


def _backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def setup(device: str | torch.device, backend: str | None = None) -> SingleProcess | DataParallel:
    """The trainer's data-parallel hooks for this process (see the module docstring).

    Parameters
    ----------
    device : the trainer's device; ``"cuda"`` without an index becomes ``cuda:LOCAL_RANK``
    backend : ``torch.distributed`` backend when this call initialises the group (default
        ``nccl`` for CUDA, ``gloo`` for CPU)
    """
    import torch.distributed as dist

    device = torch.device(device)
    initialised = dist.is_available() and dist.is_initialized()
    if not initialised and env_world_size() == 1:
        return SingleProcess(device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not initialised:
        _import_before_group()
        backend = backend or _backend_for(device)
        if backend not in ("gloo", "nccl", "mpi", "ucc"):
            raise ValueError(f"backend must be 'gloo', 'nccl', 'mpi' or 'ucc', got {backend!r}")
        kwargs: dict[str, Any] = {"backend": backend, "init_method": "env://"}
        if backend == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
        atexit.register(_destroy)  # the trainer started it, so it ends it (no exit-time warning)
        log.info("initialised torch.distributed (%s): rank %d of %d", backend, dist.get_rank(),
                 dist.get_world_size())
    world = dist.get_world_size()
    if world == 1:
        return SingleProcess(device)
    return DataParallel(rank=dist.get_rank(), world_size=world, device=device)


def broadcast_object(obj: _T, src: int = 0) -> _T:
    """``obj`` of rank ``src`` on every process (identity without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]

