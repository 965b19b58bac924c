"""Spurious score ρ_spur (MT-CRL §2.2) pinned to analytic saliencies."""

import numpy as np
import pytest
import torch
from torch import nn

from causalmtl.metrics.spurious import input_saliency, model_spurious_score, spurious_score


class TwoTaskLinear(nn.Module):
    """out_t = x W_t: the input gradient of class c is the column W_t[:, c], for every x."""

    def __init__(self, w0: torch.Tensor, w1: torch.Tensor) -> None:
        super().__init__()
        self.w0 = nn.Parameter(w0)
        self.w1 = nn.Parameter(w1)

    def forward(self, x):
        return [x @ self.w0, x @ self.w1]


def test_saliency_of_linear_model_is_analytic():
    rng = np.random.default_rng(0)
    w0 = torch.as_tensor(rng.normal(size=(4, 3)))
    w1 = torch.as_tensor(rng.normal(size=(4, 2)))
    model = TwoTaskLinear(w0, w1)
    x = rng.normal(size=(37, 4))
    y = np.stack([rng.integers(0, 3, 37), rng.integers(0, 2, 37)], axis=1)
    y[5, 0] = -1  # a missing label contributes nothing
    sal = input_saliency(model, x, y, batch_size=10)
    want0 = sum(np.abs(w0.numpy()[:, c]) for c in y[:, 0] if c >= 0)
    want1 = sum(np.abs(w1.numpy()[:, c]) for c in y[:, 1])
    np.testing.assert_allclose(sal, np.stack([want0, want1]), rtol=1e-10)

    blocks = [[0, 1], np.array([False, False, True, True])]
    rho = model_spurious_score(model, x, y, blocks, batch_size=10)
    np.testing.assert_allclose(rho, [want0[2:].sum() / want0.sum(), want1[:2].sum() / want1.sum()])


def test_model_ignoring_noncausal_inputs_scores_zero_and_nonlinear_uses_per_example_grads():
    class Net(nn.Module):
        def forward(self, x):
            # task 0 reads x0 only; task 1 reads x0 and x1 nonlinearly
            return [torch.stack([x[:, 0] ** 2, -x[:, 0]], 1), torch.stack([x[:, 0] * x[:, 1], x[:, 1]], 1)]

    x = np.array([[1.0, 2.0], [-3.0, 0.5]])
    y = np.array([[0, 0], [1, 1]])
    sal = input_saliency(Net(), x, y)
    # task 0: |2·x0| = 2 (row 0), |−1| = 1 (row 1) on x0; nothing on x1
    # task 1: row 0 d(x0 x1) = (x1, x0) = (2, 1); row 1 d(x1) = (0, 1)
    np.testing.assert_allclose(sal, [[3.0, 0.0], [2.0, 2.0]])
    np.testing.assert_allclose(spurious_score(sal, [[0], [0]]), [0.0, 0.5])


def test_log_softmax_score_and_regression_outputs():
    class Reg(nn.Module):
        def forward(self, x):
            return [3.0 * x[:, 1:2]]

    x = np.zeros((4, 2))
    sal = input_saliency(Reg(), x, np.array([0.5, np.nan, 1.0, 2.0]))
    np.testing.assert_allclose(sal, [[0.0, 9.0]])  # three labelled rows, |∂/∂x1| = 3

    class Cls(nn.Module):
        def forward(self, x):
            return torch.stack([x[:, 0], torch.zeros_like(x[:, 0])], 1)

    # log_softmax of (x0, 0) at class 0 at x0 = 0: derivative 1 - σ(0) = 0.5
    sal = input_saliency(Cls(), np.zeros((2, 1)), np.array([0, 0]), score="log_softmax")
    np.testing.assert_allclose(sal, [[1.0]])


def test_spurious_score_errors():
    with pytest.raises(ValueError, match="causal_blocks has 1 entries"):
        spurious_score(np.ones((2, 3)), [[0]])
    with pytest.raises(ValueError, match=r"feature index 5, outside \[0, 3\)"):
        spurious_score(np.ones((1, 3)), [[5]])
    with pytest.raises(ValueError, match="non-negative"):
        spurious_score(-np.ones((1, 3)), [[0]])
    assert np.isnan(spurious_score(np.zeros((1, 3)), [[0]])[0])
    with pytest.raises(ValueError, match="score must be"):
        input_saliency(lambda x: x, np.zeros((2, 2)), np.zeros(2, dtype=int), score="prob")
    with pytest.raises(ValueError, match="float array"):
        input_saliency(lambda x: x, np.zeros((2, 2), dtype=int), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="labels must have shape"):
        input_saliency(lambda x: x, np.zeros((2, 2)), np.zeros(3, dtype=int))


def test_module_is_evaluated_in_eval_mode_and_inputs_cast_to_its_dtype():
    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)  # float32 parameters
            self.drop = nn.Dropout(0.9)

        def forward(self, x):
            return [self.lin(self.drop(x))]

    model = Drop()
    x = np.random.default_rng(0).normal(size=(50, 3))  # float64 inputs
    sal = input_saliency(model, x, np.zeros(50, dtype=int))
    want = 50 * np.abs(model.lin.weight.detach().numpy()[0])  # no dropout: gradient = W[0]
    np.testing.assert_allclose(sal[0], want, rtol=1e-5)
    assert model.training  # restored
