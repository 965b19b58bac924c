"""Structured (tree) EM: the M-step refits the edge marginals (causalmtl.gmtl.unknown_q.tree_em)."""

from __future__ import annotations

import numpy as np
import pytest

from causalmtl.gmtl.priors.tree import TreePrior
from causalmtl.gmtl.unknown_q.em import EMConvergenceWarning, estimate_prior_em
from causalmtl.gmtl.unknown_q.tree_em import _project, edge_l1, estimate_tree_prior_em

N_CLASSES = (2, 3, 2, 2)
EDGES = ((0, 1), (1, 2), (1, 3))


def simulate(q: TreePrior, n: int, seed: int) -> np.ndarray:
    """Exact log N(x; μ_y, I) for x drawn from Σ_y q(y) N(μ_y, I), μ_y linear in y's one-hots."""
    rng = np.random.default_rng(seed)
    K = int(np.prod(N_CLASSES))
    grid = np.stack(np.unravel_index(np.arange(K), N_CLASSES), 1)
    onehot = np.concatenate([np.eye(c)[grid[:, t]] for t, c in enumerate(N_CLASSES)], 1)
    W = np.random.default_rng(99).normal(size=(onehot.shape[1], 6)) * 1.5
    mu = onehot @ W
    y = rng.choice(K, size=n, p=q.probs.reshape(-1) / q.probs.sum())
    x = mu[y] + rng.normal(size=(n, 6))
    return -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1)


def test_recovers_tree_q_and_error_shrinks() -> None:
    p = TreePrior.random(N_CLASSES, edges=EDGES, seed=1)
    q = TreePrior.random(N_CLASSES, edges=EDGES, seed=2)
    err = {}
    for n in (300, 30000):
        res = estimate_tree_prior_em(simulate(q, n, 0), p, smoothing=0.0)
        assert res.converged and not res.diverged
        assert res.q.edges == p.edges
        err[n] = edge_l1(res.q, q.probs)
    assert err[30000] < 0.05
    assert err[30000] < err[300] / 3


def test_fixed_point_and_monotone() -> None:
    p = TreePrior.random(N_CLASSES, edges=EDGES, seed=3)
    q = TreePrior.random(N_CLASSES, edges=EDGES, seed=4)
    ll = simulate(q, 2000, 5)
    res = estimate_tree_prior_em(ll, p, smoothing=10.0, tol=1e-13, max_iter=5000)
    assert (np.diff(res.history) >= -1e-9 * abs(res.history[-1])).all()
    # fixed point: the tree projection of the smoothed mean posterior is q̂ itself
    qh = res.q.probs.reshape(-1)
    L = np.exp(ll - ll.max(1, keepdims=True))
    r = L * qh
    r /= r.sum(1, keepdims=True)
    m = (r.sum(0) + 10.0 * p.probs.reshape(-1)) / (2000 + 10.0)
    proj = _project(m, p.edges, N_CLASSES)
    for a, b in zip(proj.pair_probs, res.q.pair_probs):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_tree_q_is_no_better_than_full_q_in_likelihood() -> None:
    # the tree family is a subset of all joints: the full-joint MLE's likelihood is at least as high
    p = TreePrior.random(N_CLASSES, edges=EDGES, seed=6)
    ll = simulate(TreePrior.random(N_CLASSES, edges=EDGES, seed=7), 1000, 8)
    tree = estimate_tree_prior_em(ll, p, smoothing=0.0, tol=1e-12, max_iter=5000)
    full = estimate_prior_em(ll, p.probs / p.probs.sum(), smoothing=0.0, tol=1e-12, max_iter=50000)
    assert full.objective >= tree.objective - 1e-6


def test_bad_input_and_warnings() -> None:
    p = TreePrior.random(N_CLASSES, edges=EDGES, seed=1)
    ll = simulate(p, 100, 0)
    with pytest.raises(ValueError, match="init must be a TreePrior"):
        estimate_tree_prior_em(ll, p.probs)
    with pytest.raises(ValueError, match="log_lik must have shape"):
        estimate_tree_prior_em(ll[:, :5], p)
    with pytest.warns(EMConvergenceWarning, match="did not converge.*changed by"):
        estimate_tree_prior_em(ll, p, smoothing=0.0, max_iter=2)
    with pytest.warns(UserWarning, match="smoothing=0: fitted the unsmoothed"):
        estimate_tree_prior_em(ll[:10], p, smoothing=0.0)
    # auto: one pseudo-observation per edge-table cell, 2·3 + 3·2 + 3·2 = 18
    assert estimate_tree_prior_em(ll, p).smoothing == 18.0
