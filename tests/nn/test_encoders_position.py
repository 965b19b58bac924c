"""Image encoders that keep position: an STL model must tell the left digit from the right one.

Learnability on a few hundred two-digit images (Multi-Digits, pair-disjoint, uniform over the
training pairs so that one digit does not predict the other): the position-keeping
``CNNEncoder`` and the Multi-MNIST ``LeNetEncoder`` fit the training set, the former global
average pool (``pool_size=1``) cannot. Plus the errors for images too small for LeNet.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causalmtl.data import make_multi_digits
from causalmtl.nn import STL, CNNEncoder, seeded
from causalmtl.nn.encoders import LeNetEncoder, lenet_min_size


def _data(upsample: int = 1):
    s = make_multi_digits("pairs", n_train=300, n_valid=10, n_test=10, seed=0)
    x = s.train.inputs  # (300, 1, 8, 16)
    if upsample > 1:
        x = np.kron(x, np.ones((1, 1, upsample, upsample), dtype=np.float32))
    return torch.as_tensor(x), torch.as_tensor(s.train.targets, dtype=torch.long), s.tasks


def _train_accuracy(make_encoder, x, y, tasks, epochs: int) -> float:
    with seeded(0):
        model = STL(make_encoder, tasks)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(50):
            out = model(x[idx])
            loss = sum(torch.nn.functional.nll_loss(o, y[idx, t]) for t, o in enumerate(out))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        out = model(x)
    return float(np.mean([(o.argmax(1) == y[:, t]).float().mean() for t, o in enumerate(out)]))


def test_position_keeping_cnn_learns_left_and_right_where_global_pooling_cannot():
    x, y, tasks = _data()
    # 10 epochs of 6 steps: the grid CNN fits the digits; the global-pool CNN (the former
    # default) is near the chance of a one-digit guess (it only memorises, slowly, with more epochs)
    new = _train_accuracy(lambda: CNNEncoder(1, (16, 32), out_dim=64), x, y, tasks, epochs=10)
    old = _train_accuracy(lambda: CNNEncoder(1, (16, 32), out_dim=64, pool_size=1), x, y, tasks, epochs=10)
    assert new > 0.9, new
    assert old < 0.5, old


def test_lenet_learns_left_and_right_digits():
    x, y, tasks = _data(upsample=2)  # 16 × 32: LeNet's smallest images
    acc = _train_accuracy(lambda: LeNetEncoder(1, (16, 32), out_dim=50), x, y, tasks, epochs=20)
    assert acc > 0.9, acc


def test_lenet_shapes_and_errors():
    enc = LeNetEncoder(1, (28, 56), out_dim=16)
    assert enc(torch.zeros(3, 1, 28, 56)).shape == (3, 16)
    assert enc(torch.zeros(3, 28, 56)).shape == (3, 16)  # channel axis added
    assert enc[8].in_features == 20 * 4 * 11  # no global pooling: every position reaches the fc layer
    assert lenet_min_size() == 16
    LeNetEncoder(1, (16, 16))
    with pytest.raises(ValueError, match=r"at least 16×16.*input_size=\(8, 16\)"):
        LeNetEncoder(1, (8, 16))
    with pytest.raises(ValueError, match=r"built for images \(B, 1, 28, 56\).*\(2, 1, 28, 28\)"):
        enc(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="pool_size"):
        CNNEncoder(1, (4,), pool_size=(0, 2))
