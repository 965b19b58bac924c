"""The :class:`Batch` type methods consume, and its conversion from a ``MultiTaskDataset``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.base import MultiTaskDataset, index_inputs
from ..nn.base import ModelInput, batch_size_of

__all__ = ["Batch", "to_tensor_inputs", "targets_to_tensor"]


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


@dataclass
class Batch:
    """A mini-batch: inputs, targets and environment ids.

    Attributes
    ----------
    x : tensor ``(B, ...)`` or dict of tensors sharing the first axis
    y : float tensor ``(B, T)``; class labels stored as exact floats; ``NaN`` where missing
    env : long tensor ``(B,)``, the environment id of each row
    """

    x: ModelInput
    y: Tensor
    env: Tensor

    def __len__(self) -> int:
        return batch_size_of(self.x)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on ``device``."""
        if isinstance(self.x, Mapping):
            x: ModelInput = {k: v.to(device, non_blocking=non_blocking) for k, v in self.x.items()}
        else:
            x = self.x.to(device, non_blocking=non_blocking)
        return Batch(x, self.y.to(device, non_blocking=non_blocking), self.env.to(device, non_blocking=non_blocking))

    def index(self, idx: Tensor) -> Batch:
        """Rows ``idx`` (a long index tensor or boolean mask on the batch's device)."""
        if isinstance(self.x, Mapping):
            x: ModelInput = {k: v[idx] for k, v in self.x.items()}
        else:
            x = self.x[idx]
        return Batch(x, self.y[idx], self.env[idx])

    @classmethod
    def from_dataset(
        cls,
        data: MultiTaskDataset,
        idx: Any = None,
        device: torch.device | str | None = None,
    ) -> Batch:
        """Rows ``idx`` (default all) of ``data`` as a batch on ``device``."""
        inputs = data.inputs if idx is None else index_inputs(data.inputs, idx)
        targets = data.targets if idx is None else data.targets[idx]
        env = data.env if idx is None else data.env[idx]
        return cls(
            to_tensor_inputs(inputs, device),
            targets_to_tensor(targets, device),
            torch.as_tensor(np.asarray(env, dtype=np.int64), device=device),
        )
