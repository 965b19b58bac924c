"""Batches for the trainer and evaluation, from memory or streamed from disk.

In memory (the default for small data) a split is one :class:`~causalmtl.methods.batch.Batch`
on the device and a step's batch is an index into it. A streamed split
(:attr:`MultiTaskDataset.streamed`: inputs on a :class:`~causalmtl.data.streamed.FileSource`)
is read step by step through a :class:`torch.utils.data.DataLoader`: each item of the loader
is one whole step — one batch per environment group, the rows the seeded epoch plan
(:func:`~causalmtl.train.sampling.epoch_plan`) names — so a streamed run draws exactly the rows
an in-memory run draws, whatever the number of workers. Workers read and transform rows (the
transform's generator is ``default_rng([seed, epoch, row])``), the main process only moves
the finished batch to the device (pinned memory and ``non_blocking`` copies on CUDA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from ..data.base import MultiTaskDataset
from ..data.streamed import collate, read_rows
from ..methods.batch import Batch, batch_from_arrays

_Item = TypeVar("_Item")

__all__ = ["LoaderOptions", "rows_batch", "StepBatches", "eval_batches"]


class LoaderOptions:
    """DataLoader settings for streamed data.

    Parameters
    ----------
    num_workers : reader processes (0: read in the training process)
    pin_memory : page-locked batches for asynchronous copies (default: on for CUDA)
    prefetch_factor : steps each worker prepares ahead (with ``num_workers > 0``)
    persistent_workers : keep workers alive between epochs (with ``num_workers > 0``)
    """

    def __init__(self, num_workers: int = 0, pin_memory: bool | None = None, prefetch_factor: int = 2,
                 persistent_workers: bool = True) -> None:
        if not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if not isinstance(prefetch_factor, (int, np.integer)) or prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be an int >= 1, got {prefetch_factor!r}")
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.prefetch_factor = int(prefetch_factor)
        self.persistent_workers = bool(persistent_workers)

    def loader(self, dataset: torch.utils.data.Dataset[_Item], sampler: Iterable[object],
               device: torch.device) -> torch.utils.data.DataLoader[_Item]:
        pin = self.pin_memory if self.pin_memory is not None else device.type == "cuda"
        kw: dict[str, Any] = {}
        if self.num_workers > 0:
            kw = {"prefetch_factor": self.prefetch_factor, "persistent_workers": self.persistent_workers}
        return torch.utils.data.DataLoader(
            dataset, batch_size=None, sampler=sampler, num_workers=self.num_workers,
            pin_memory=pin and device.type == "cuda", collate_fn=_identity, **kw)


def _identity(x: _Item) -> _Item:
    return x


def rows_batch(data: MultiTaskDataset, rows: np.ndarray, seed: int = 0, epoch: int = 0) -> Batch:
    """Rows ``rows`` of a dataset as a CPU batch (streamed: read and transformed here)."""
    rows = np.asarray(rows, dtype=np.int64)
    if data.streamed and data.transform is None and not data.dense_tasks:
        x = data.inputs.read_batch(rows)  # type: ignore[union-attr]
        if x is not None:  # the source composes the whole batch at once
            return batch_from_arrays(x, data.targets[rows], data.env[rows], None, data.tasks)
    if data.streamed:
        samples = read_rows(data.inputs, rows, data.transform, seed, epoch)  # type: ignore[arg-type]
        x, maps = collate(samples, data.dense_tasks)
        return batch_from_arrays(x, data.targets[rows], data.env[rows], maps, data.tasks)
    return Batch.from_dataset(data, rows)


class _StepDataset(torch.utils.data.Dataset[list[Batch]]):
    """Item ``(epoch, step)``: the step's batches, one per environment group."""

    def __init__(self, data: MultiTaskDataset, plan_of: Callable[[int], list[list[np.ndarray]]], seed: int) -> None:
        self.data = data
        self.plan_of = plan_of
        self.seed = seed
        self._cached: tuple[int, list[list[np.ndarray]]] | None = None

    def __len__(self) -> int:  # pragma: no cover - only the sampler's indices are used
        raise TypeError("a _StepDataset is indexed by (epoch, step)")

    def __getitem__(self, key: tuple[int, int]) -> list[Batch]:
        epoch, step = key
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self.plan_of(epoch))  # a pure function: same in every worker
        return [rows_batch(self.data, plan[step], self.seed, epoch) for plan in self._cached[1]]


class _EpochSampler:
    """Yields ``(epoch, 0), …, (epoch, n_steps - 1)`` for the epoch set before iterating."""

    def __init__(self, n_steps: int) -> None:
        self.n_steps = n_steps
        self.epoch = 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, s) for s in range(self.n_steps)])

    def __len__(self) -> int:
        return self.n_steps


class StepBatches:
    """A training epoch's batches, step by step, in memory or streamed.

    ``plan_of(epoch)`` gives this process's rows of every step of every environment group
    (the epoch plan, already sharded under data parallelism).
    """

    def __init__(self, data: MultiTaskDataset, plan_of: Callable[[int], list[list[np.ndarray]]],
                 n_steps: int, device: torch.device, seed: int, options: LoaderOptions | None = None) -> None:
        self.data = data
        self.plan_of = plan_of
        self.n_steps = n_steps
        self.device = device
        self.options = options or LoaderOptions()
        self._resident: Batch | None = None
        self._loader: torch.utils.data.DataLoader[list[Batch]] | None = None
        if data.streamed:
            self._sampler = _EpochSampler(n_steps)
            self._loader = self.options.loader(_StepDataset(data, plan_of, seed), self._sampler, device)
        else:
            self._resident = Batch.from_dataset(data, device=device)

    @property
    def resident(self) -> Batch | None:
        """The whole split on the device (in-memory data), else ``None``."""
        return self._resident

    def epoch(self, epoch: int) -> Iterator[list[Batch]]:
        """The step batches of ``epoch`` (1-based), on the device."""
        if self._resident is not None:
            plans = self.plan_of(epoch)
            for s in range(self.n_steps):
                yield [self._resident.index(torch.as_tensor(plan[s], device=self.device)) for plan in plans]
            return
        assert self._loader is not None
        self._sampler.epoch = epoch
        non_blocking = self.device.type == "cuda"
        for batches in self._loader:
            yield [b.to(self.device, non_blocking=non_blocking) for b in batches]


def eval_batches(data: MultiTaskDataset | Batch, batch_size: int, device: torch.device,
                 rows: np.ndarray | None = None, options: LoaderOptions | None = None) -> Iterator[Batch]:
    """Consecutive chunks of ``rows`` (default all) for evaluation, on ``device``.

    A :class:`Batch` (a split already on the device) is sliced; an in-memory dataset is
    converted chunk by chunk; a streamed one is read through a DataLoader (its transform
    seeded as epoch 0: evaluation transforms are deterministic).
    """
    n = len(data)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    chunks: Sequence[np.ndarray] = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    if isinstance(data, Batch):
        for c in chunks:
            yield data.index(torch.as_tensor(c, device=data.y.device))
        return
    if not data.streamed:
        for c in chunks:
            yield Batch.from_dataset(data, c, device=device)
        return
    base = options or LoaderOptions()
    opts = LoaderOptions(base.num_workers, base.pin_memory, base.prefetch_factor, persistent_workers=False)
    sampler = list(range(len(chunks)))
    loader = opts.loader(_ChunkDataset(data, chunks), sampler, device)
    for b in loader:
        yield b.to(device, non_blocking=device.type == "cuda")


class _ChunkDataset(torch.utils.data.Dataset[Batch]):
    def __init__(self, data: MultiTaskDataset, chunks: Sequence[np.ndarray]) -> None:
        self.data = data
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> Batch:
        return rows_batch(self.data, self.chunks[i])
