"""Task heads: classification (log-probabilities out) and regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.base import Task

__all__ = ["ClassificationHead", "RegressionHead", "make_head", "make_heads"]


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class ClassificationHead(nn.Module):
    """``log_softmax(MLP(z))``: per-task log-probabilities ``(B, n_classes)``.

    Parameters
    ----------
    in_dim : representation width
    n_classes : number of classes (>= 2)
    hidden : widths of optional hidden layers (default none: one linear layer)
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        self.net = _mlp(in_dim, hidden, n_classes)

    def forward(self, z: Tensor) -> Tensor:
        return torch.log_softmax(self.net(z), dim=-1)


class RegressionHead(nn.Module):
    """``MLP(z)`` squeezed to ``(B,)`` (trained with squared error)."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        self.net = _mlp(in_dim, hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        result: Tensor = self.net(z).squeeze(-1)
        return result


def make_head(in_dim: int, task: Task, hidden: Sequence[int] = ()) -> nn.Module:
    """The head matching ``task.kind``."""
    if task.kind == "classification":
        return ClassificationHead(in_dim, task.n_classes, hidden)
    return RegressionHead(in_dim, hidden)


def make_heads(in_dim: int, tasks: Sequence[Task], hidden: Sequence[int] = ()) -> nn.ModuleList:
    """One head per task."""
    return nn.ModuleList(make_head(in_dim, t, hidden) for t in tasks)
