"""One prior convention across gmtl and shift: every prior parameter takes a Prior object;
a bare array is read by the parameter's name — ``prior``/``p``/``q`` a probability table,
``log_p``/``log_q`` a log table (docs/shift.md, the ``Prior`` docstring)."""

import numpy as np
import pytest

from causalmtl.gmtl import TreePrior, gmtl_decode
from causalmtl.shift import ShuffleNoiseSampler, importance_accuracy, severity, weighted_tau

N_CLASSES = (2, 3, 2)


def priors(kind, seed):
    tree = TreePrior.random(N_CLASSES, seed=seed, concentration=0.5)
    return tree if kind == "tree" else tree.to_joint()


@pytest.mark.parametrize("kind", ["table", "tree"])
def test_gmtl_reads_probability_tables_and_priors_alike(kind):
    rng = np.random.default_rng(0)
    p, q = priors(kind, 1), priors(kind, 2)
    lp = [np.log(rng.dirichlet(np.ones(c), size=30)) for c in N_CLASSES]
    by_obj = gmtl_decode(lp, p, q=q, kernel="table").labels
    by_array = gmtl_decode(lp, p.probs, q=q.probs).labels
    np.testing.assert_array_equal(by_obj, by_array)
    # and the array is not read as logs: log-probabilities are refused as a probability table
    with pytest.raises(ValueError):
        gmtl_decode(lp, np.log(p.probs))


@pytest.mark.parametrize("kind", ["table", "tree"])
def test_shift_reads_log_tables_and_priors_alike(kind):
    p, q = priors(kind, 3), priors(kind, 4)
    assert weighted_tau(p, q) == weighted_tau(p.log_prob, q.log_prob)
    np.testing.assert_array_equal(severity(p, [q.log_prob.ravel()]), severity(p.log_prob, [q.log_prob.ravel()]))
    a = ShuffleNoiseSampler().sample(p, 5, seed=0)
    b = ShuffleNoiseSampler().sample(p.log_prob, 5, seed=0)
    np.testing.assert_array_equal(a.log_q, b.log_q)
    # importance weights: p and q (no log_ prefix) are probabilities, like gmtl's prior/q
    rng = np.random.default_rng(5)
    labels = np.stack([rng.integers(0, c, size=40) for c in N_CLASSES], axis=1)
    preds = labels.copy()
    preds[::3, 0] = 1 - preds[::3, 0]
    by_obj = importance_accuracy(labels, preds, p, q, n_classes=N_CLASSES)
    by_array = importance_accuracy(labels, preds, p.probs, q.probs, n_classes=N_CLASSES)
    np.testing.assert_array_equal(by_obj, by_array)
