"""A tiny dense multi-task problem (a class, a segmentation, depth and normals on 8×8
images) and a conv model for it, shared by the streaming and data-parallel tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from causalmtl.data.base import DatasetSplits, MultiTaskDataset, Task
from causalmtl.data.streamed import ArraySource
from causalmtl.nn import seeded
from causalmtl.nn.base import ModelOutput, MultiTaskModel

TASKS = (Task("cls", n_classes=3), Task("seg", "segmentation", n_classes=4),
         Task("depth", "dense", channels=1, loss="l1"), Task("normal", "dense", channels=3, loss="cosine"))


def arrays(n: int, seed: int, hw: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, hw, hw)).astype(np.float32)
    seg = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    seg[:, 0, :] = -1                                          # an ignored row of pixels
    depth = np.abs(x[:, 2:3]) + 0.1
    depth[:, :, :, 0] = np.nan                                 # invalid column
    normal = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.stack([np.digitize(x[:, 0].mean((1, 2)), [-0.1, 0.1]), np.ones(n), np.ones(n), np.ones(n)], 1)
    y = y.astype(np.float64)
    y[::5, 0] = np.nan                                          # missing class labels
    y[1::7, 1] = np.nan                                         # missing segmentation maps
    seg[1::7] = -1
    depth[2, :] = np.nan                                        # a map with no valid pixel
    return x, y, {"seg": seg, "depth": depth, "normal": normal.astype(np.float32)}


def dataset(n: int, env: int, seed: int, streamed: bool) -> MultiTaskDataset:
    x, y, maps = arrays(n, seed)
    if streamed:
        return MultiTaskDataset(ArraySource(x, maps), y, TASKS, env=np.full(n, env))
    return MultiTaskDataset(x, y, TASKS, env=np.full(n, env), maps=maps)


def splits(streamed: bool) -> DatasetSplits:
    return DatasetSplits(dataset(40, 0, 0, streamed), dataset(16, 1, 1, streamed),
                         dataset(16, 2, 2, streamed))


class TinyDense(MultiTaskModel):
    """A conv trunk; a pooled head for the class, 1×1 conv heads for the maps."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = TASKS
        self.feature_dim = 8
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(8, 3), nn.Conv2d(8, 4, 1), nn.Conv2d(8, 1, 1), nn.Conv2d(8, 3, 1)])

    def forward_full(self, x):
        f = self.trunk(x)
        pooled = f.mean((2, 3))
        outs = [torch.log_softmax(self.heads[0](pooled), 1), torch.log_softmax(self.heads[1](f), 1),
                self.heads[2](f), self.heads[3](f)]
        return ModelOutput(outs, features=pooled)


def model() -> TinyDense:
    with seeded(0):
        return TinyDense()
