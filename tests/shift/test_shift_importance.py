"""Importance-sampled metrics (§5.4): the grouped, vectorised estimate equals a naive loop."""

from __future__ import annotations

import numpy as np
import pytest

from causalmtl.gmtl import JointPrior
from causalmtl.shift import (
    ImportanceEstimator,
    LabelPatterns,
    importance_accuracy,
    importance_mean,
    sample_q,
)


def _naive_accuracy(labels, predictions, p, q, task):
    """Per-example loop: w_n = q_O(y_O)/p_O(y_O) with marginals over the missing tasks."""
    n_classes = p.shape
    out = np.zeros((q.shape[0], predictions.shape[0]))
    for d in range(q.shape[0]):
        qd = q[d].reshape(n_classes)
        for a in range(predictions.shape[0]):
            num = den = 0.0
            for n in range(labels.shape[0]):
                if labels[n, task] < 0:
                    continue
                index = tuple(
                    int(y) if y >= 0 else slice(None) for y in labels[n]
                )  # missing task: sum it out
                w = qd[index].sum() / p[index].sum()
                num += w * float(predictions[a, n, task] == labels[n, task])
                den += w
            out[d, a] = num / den
    return out


def _random_case(rng, n_classes, N, A, missing):
    T = len(n_classes)
    labels = np.stack([rng.integers(0, c, N) for c in n_classes], axis=1)
    for t, rate in enumerate(missing):
        labels[rng.random(N) < rate, t] = -1
    preds = np.stack(
        [np.stack([rng.integers(0, c, N) for c in n_classes], axis=1) for _ in range(A)]
    )
    # make predictions right more often than chance, differently per α
    for a in range(A):
        hit = rng.random(N) < 0.3 + 0.05 * a
        preds[a, hit] = np.maximum(labels[hit], 0)
    p = rng.dirichlet(np.ones(int(np.prod(n_classes)))).reshape(n_classes)
    return labels, preds, p, T


@pytest.mark.parametrize(
    "n_classes, missing",
    [
        ((3, 4), (0.0, 0.0)),
        ((3, 4), (0.2, 0.3)),
        ((2, 3, 2), (0.1, 0.25, 0.4)),
        ((4,), (0.3,)),
    ],
)
def test_vectorised_equals_naive_loop(n_classes, missing):
    rng = np.random.default_rng(sum(n_classes))
    labels, preds, p, T = _random_case(rng, n_classes, N=120, A=3, missing=missing)
    q = sample_q(np.log(p), 6, seed=1).q
    for task in range(T):
        fast = importance_accuracy(labels, preds, p, q, task=task)
        slow = _naive_accuracy(labels, preds, p, q, task)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_patterns_cover_every_missingness_combination():
    rng = np.random.default_rng(0)
    labels, _, _, _ = _random_case(rng, (2, 3, 2), N=400, A=1, missing=(0.3, 0.3, 0.3))
    pats = LabelPatterns.from_labels(labels, (2, 3, 2))
    assert pats.masks.shape == (8, 3)  # all 2^3 observation masks occur
    np.testing.assert_array_equal(pats.labels[pats.inverse], labels)
    assert pats.n_patterns == len({tuple(r) for r in labels})
    # flat_index addresses the observed tasks' table in C-order
    for g in range(pats.n_patterns):
        obs = pats.masks[pats.mask_id[g]]
        dims = [c for c, o in zip((2, 3, 2), obs) if o]
        if dims:
            assert pats.flat_index[g] == np.ravel_multi_index(pats.labels[g][obs], dims)


def test_q_equal_p_gives_plain_accuracy():
    rng = np.random.default_rng(1)
    labels, preds, p, _ = _random_case(rng, (3, 5), N=300, A=4, missing=(0.2, 0.3))
    acc = importance_accuracy(labels, preds, p, p.reshape(1, -1), task=0)
    lab = labels[:, 0] >= 0
    plain = (preds[:, lab, 0] == labels[lab, 0]).mean(axis=1)
    np.testing.assert_allclose(acc[0], plain, atol=1e-14)


def test_weights_follow_q_over_p_analytically():
    # Two examples with labels (0,) and (1,) for one binary task; p = (0.5, 0.5), q = (0.8, 0.2):
    # weights ∝ 1.6, 0.4, so the mean of values (1, 0) is 0.8.
    labels = np.array([[0], [1]])
    est = importance_mean(
        np.array([1.0, 0.0]), labels, np.array([0.5, 0.5]), np.array([[0.8, 0.2]]), (2,)
    )
    assert est[0] == pytest.approx(0.8, abs=1e-15)


def test_missing_aux_uses_marginal():
    # Example 0 lacks the aux label: its weight is q(y0=1)/p(y0=1) = 0.5/0.5 = 1.
    labels = np.array([[1, -1], [0, 0]])
    p = np.full((2, 2), 0.25)
    q = np.array([[0.1, 0.4], [0.25, 0.25]])[None]
    # weights: ex0 -> (0.25+0.25)/0.5 = 1.0; ex1 -> 0.1/0.25 = 0.4
    est = importance_mean(np.array([1.0, 0.0]), labels, p, q, (2, 2))
    assert est[0] == pytest.approx(1.0 / 1.4, abs=1e-15)


def test_estimator_reuse_and_qdraws_input():
    rng = np.random.default_rng(2)
    labels, preds, p, _ = _random_case(rng, (4, 3), N=200, A=2, missing=(0.1, 0.1))
    prior = JointPrior.from_probs(p)
    draws = sample_q(prior, 10, seed=4)
    correct = (preds[:, :, 1] == labels[None, :, 1]).astype(float)
    est = ImportanceEstimator(labels, correct, (4, 3), valid=labels[:, 1] >= 0)
    a = est.estimate(prior, draws)
    b = np.concatenate([est.estimate(p, draws.q[:4]), est.estimate(p, draws.q[4:])])
    np.testing.assert_allclose(a, b, atol=1e-13)
    np.testing.assert_allclose(
        a, importance_accuracy(labels, preds, prior, draws, task=1), atol=1e-13
    )
    np.testing.assert_allclose(est.estimate(np.log(p), draws.q, p_is_log=True), a, atol=1e-13)


def test_tiny_q_does_not_underflow():
    labels = np.array([[0], [1], [2]])
    log_q = np.array([[-800.0, -801.0, -2000.0]])  # exp underflows to 0 everywhere
    from causalmtl.shift import QDraws

    est = importance_mean(np.array([1.0, 0.0, 0.0]), labels, np.full(3, 1 / 3), QDraws(log_q), (3,))
    assert est[0] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-12)


def test_bad_input():
    labels = np.array([[0, 1], [1, 0]])
    p = np.full((2, 2), 0.25)
    q = p.reshape(1, -1)
    with pytest.raises(ValueError, match=r"predictions has shape"):
        importance_accuracy(labels, np.zeros((2, 3, 2), dtype=int), p, q)
    with pytest.raises(ValueError, match=r"predictions for task 0 hold 5"):
        importance_accuracy(labels, np.full((1, 2, 2), 5), p, q)
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = 3"):
        importance_accuracy(np.array([[0, 3], [1, 0]]), np.zeros((1, 2, 2), dtype=int), p, q)
    with pytest.raises(ValueError, match="expected a multiple of"):
        importance_accuracy(labels, np.zeros((1, 2, 2), dtype=int), p, np.ones((1, 5)) / 5)
    with pytest.raises(ValueError, match="probability 0 to the observed label pattern"):
        importance_accuracy(
            labels, np.zeros((1, 2, 2), dtype=int), np.array([[0.5, 0.0], [0.0, 0.5]]), q
        )
    with pytest.raises(ValueError, match="valid selects no example"):
        importance_accuracy(np.array([[-1, 1], [-1, 0]]), np.zeros((1, 2, 2), dtype=int), p, q)
    with pytest.raises(ValueError, match="task must be"):
        importance_accuracy(labels, np.zeros((1, 2, 2), dtype=int), p, q, task=2)


def test_many_q_many_alpha_shapes():
    rng = np.random.default_rng(3)
    labels, preds, p, _ = _random_case(rng, (3, 3), N=50, A=5, missing=(0.0, 0.5))
    acc = importance_accuracy(labels, preds, p, sample_q(np.log(p), 7, seed=0))
    assert acc.shape == (7, 5)
    assert ((acc >= 0) & (acc <= 1)).all()
