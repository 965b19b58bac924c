"""The :class:`Batch` type methods consume, and its conversion from a ``MultiTaskDataset``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.base import MultiTaskDataset, index_inputs
from ..data.streamed import collate, read_rows
from ..nn.base import ModelInput, batch_size_of

__all__ = ["Batch", "to_tensor_inputs", "targets_to_tensor", "maps_to_tensors", "batch_from_arrays"]


def _to_tensor(a: Any, device: torch.device | str | None) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(device) if device is not None else a
    arr = np.asarray(a)
    if arr.dtype.kind == "f" or arr.dtype == np.uint8:  # uint8: image pixels, not ids
        return torch.as_tensor(arr, dtype=torch.float32, device=device)
    if arr.dtype.kind in "iu":
        return torch.as_tensor(arr.astype(np.int64, copy=False), device=device)
    if arr.dtype.kind == "b":
        return torch.as_tensor(arr.astype(np.float32), device=device)
    raise ValueError(f"inputs must be numeric arrays, got dtype {arr.dtype}")


def to_tensor_inputs(inputs: Any, device: torch.device | str | None = None) -> ModelInput:
    """Numpy inputs (array or dict of arrays) as tensors.

    Floats and ``uint8`` (image pixels, values kept) become float32; other integers (ids)
    int64; booleans float32.
    """
    if isinstance(inputs, Mapping):
        return {k: _to_tensor(v, device) for k, v in inputs.items()}
    return _to_tensor(inputs, device)


def targets_to_tensor(targets: np.ndarray, device: torch.device | str | None = None) -> Tensor:
    """``(N, T)`` targets as a float32 tensor with ``NaN`` for missing (``-1`` labels become NaN)."""
    t = np.asarray(targets)
    if t.dtype.kind in "iu":
        t = np.where(t < 0, np.nan, t.astype(np.float64))
    return torch.as_tensor(t, dtype=torch.float32, device=device)


def maps_to_tensors(maps: Mapping[str, np.ndarray], tasks: Any, y: np.ndarray,
                    device: torch.device | str | None = None) -> tuple[dict[int, Tensor], np.ndarray]:
    """Dense targets by task name as tensors by task index; ``y`` with empty maps marked missing.

    Class maps become int64 (``-1`` = ignored pixel), regression maps float32 (``NaN`` =
    invalid pixel). A row whose map has no valid pixel gets ``NaN`` in its ``y`` column: it
    counts as a missing target (no loss, not in the task's risk denominator).
    """
    out: dict[int, Tensor] = {}
    y = np.array(y, dtype=np.float64, copy=True)
    for t, task in enumerate(tasks):
        if not task.is_dense:
            continue
        m = np.asarray(maps[task.name])
        if task.kind == "segmentation":
            valid = (m >= 0).reshape(len(m), -1).any(1)
            out[t] = torch.as_tensor(m.astype(np.int64, copy=False), device=device)
        else:
            valid = (~np.isnan(m)).reshape(len(m), -1).any(1)
            out[t] = torch.as_tensor(m.astype(np.float32, copy=False), device=device)
        y[~valid, t] = np.nan
    return out, y


def batch_from_arrays(x: Any, targets: np.ndarray, env: np.ndarray, maps: Mapping[str, np.ndarray] | None,
                      tasks: Any, device: torch.device | str | None = None) -> Batch:
    """A :class:`Batch` from numpy rows: inputs, ``(B, T)`` targets, env ids and dense maps."""
    dense: dict[int, Tensor] = {}
    if maps:
        dense, targets = maps_to_tensors(maps, tasks, targets, device)
    return Batch(to_tensor_inputs(x, device), targets_to_tensor(targets, device),
                 torch.as_tensor(np.asarray(env, dtype=np.int64), device=device), dense)


@dataclass
class Batch:
    """A mini-batch: inputs, targets, environment ids and dense target maps.

    Attributes
    ----------
    x : tensor ``(B, ...)`` or dict of tensors sharing the first axis
    y : float tensor ``(B, T)``; class labels stored as exact floats; ``NaN`` where missing;
        for a dense task ``1.0`` where the row has a map with at least one valid pixel
    env : long tensor ``(B,)``, the environment id of each row
    maps : dense targets by task index: ``(B, H, W)`` long class maps (``-1`` ignored) or
        ``(B, C, H, W)`` float regression maps (``NaN`` invalid); empty without dense tasks
    """

    x: ModelInput
    y: Tensor
    env: Tensor
    maps: dict[int, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return batch_size_of(self.x)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on ``device``."""
        if isinstance(self.x, Mapping):
            x: ModelInput = {k: v.to(device, non_blocking=non_blocking) for k, v in self.x.items()}
        else:
            x = self.x.to(device, non_blocking=non_blocking)
        return Batch(x, self.y.to(device, non_blocking=non_blocking), self.env.to(device, non_blocking=non_blocking),
                     {t: m.to(device, non_blocking=non_blocking) for t, m in self.maps.items()})

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (for asynchronous copies to a GPU)."""
        x = {k: v.pin_memory() for k, v in self.x.items()} if isinstance(self.x, Mapping) else self.x.pin_memory()
        return Batch(x, self.y.pin_memory(), self.env.pin_memory(), {t: m.pin_memory() for t, m in self.maps.items()})

    def index(self, idx: Tensor) -> Batch:
        """Rows ``idx`` (a long index tensor or boolean mask on the batch's device)."""
        if isinstance(self.x, Mapping):
            x: ModelInput = {k: v[idx] for k, v in self.x.items()}
        else:
            x = self.x[idx]
        return Batch(x, self.y[idx], self.env[idx], {t: m[idx] for t, m in self.maps.items()})

    @classmethod
    def chunks(cls, data: MultiTaskDataset | Batch, batch_size: int,
               device: torch.device | str | None = None) -> Iterator[Batch]:
        """Consecutive batches of ``batch_size`` rows of ``data``, on ``device``.

        A :class:`Batch` is sliced; a dataset (in memory or streamed) is converted chunk by
        chunk, so a streamed split is never held whole (the trainer's evaluation reads them
        through a DataLoader instead: :func:`causalmtl.train.streaming.eval_batches`).
        """
        n = len(data)
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            if isinstance(data, Batch):
                yield data.index(torch.as_tensor(rows, device=data.y.device)).to(device or data.y.device)
            else:
                yield cls.from_dataset(data, rows, device=device)

    @classmethod
    def from_dataset(
        cls,
        data: MultiTaskDataset,
        idx: Any = None,
        device: torch.device | str | None = None,
    ) -> Batch:
        """Rows ``idx`` (default all) of ``data`` as a batch on ``device``.

        For a streamed dataset the rows are read from its file source (with its transform,
        seeded as for epoch 0); use it for batches, not whole splits.
        """
        rows = np.arange(len(data)) if idx is None else np.arange(len(data))[idx]
        targets = data.targets if idx is None else data.targets[idx]
        env_all = data.env  # MultiTaskDataset.__post_init__ fills env (zeros when None)
        env = env_all if idx is None else env_all[idx]
        if data.streamed:
            samples = read_rows(data.inputs, rows, data.transform)  # type: ignore[arg-type]
            x, streamed_maps = collate(samples, data.dense_tasks)
            return batch_from_arrays(x, targets, env, streamed_maps, data.tasks, device)
        inputs = data.inputs if idx is None else index_inputs(data.inputs, idx)
        maps = None if data.maps is None else (data.maps if idx is None else {k: v[idx] for k, v in data.maps.items()})
        return batch_from_arrays(inputs, targets, env, maps, data.tasks, device)
