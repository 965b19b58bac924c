"""MT-CRL plugs into the trainer: protocol "mtcrl" gives train and valid as two environments."""

import numpy as np
import pytest
import torch

from causalmtl.data import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.nn import MLPEncoder, seeded
from causalmtl.nn.mtcrl import MTCRLNet
from causalmtl.train import Trainer

TASKS = (Task("a", "classification", 2), Task("b", "classification", 3))


def splits(seed=0):
    rng = np.random.default_rng(seed)

    def part(n):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = np.stack([(x[:, 0] > 0).astype(int), rng.integers(0, 3, n)], 1)
        return MultiTaskDataset(x, y, TASKS)

    return DatasetSplits(part(96), part(64), part(32), name="toy")


def net():
    with seeded(0):
        return MTCRLNet(lambda d: MLPEncoder(6, (8, d)), TASKS, n_modules=4, width=16)


def test_trainer_runs_mtcrl_with_train_and_valid_as_environments():
    method = MTCRL(net(), girm="var")
    theta0 = method.model.theta.detach().clone()
    result = Trainer(method, epochs=2, batch_size=32, protocol="mtcrl", seed=0).fit(splits())
    hist = result.history
    assert len(hist) == 2
    assert np.isfinite(hist.filter(like="valid/loss").to_numpy(dtype=float)).all()
    assert not torch.equal(theta0, method.model.theta.detach())


def test_trainer_without_valid_environment_explains_the_protocol():
    with pytest.raises(ValueError, match="at least 2 environments"):
        Trainer(MTCRL(net()), epochs=1, batch_size=32, protocol="split").fit(splits())
