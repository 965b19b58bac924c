"""EM / MLLS and BBSE over the joint label space (causalmtl.gmtl.unknown_q.em)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from causalmtl.gmtl.unknown_q import em as em_mod
from causalmtl.gmtl.unknown_q.adapt import gmtl_log_likelihood
from causalmtl.gmtl.unknown_q.em import (
    EMConvergenceWarning,
    RawScoresWarning,
    bbse,
    estimate_prior_em,
    marginal_log_likelihood,
)

MEANS = np.array([[-3.0, 0.0], [-1.0, 1.0], [1.0, -1.0], [3.0, 0.5], [0.0, 2.5], [0.0, -2.5]])
K = MEANS.shape[0]


def simulate(q: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact log-likelihoods log N(x; μ_y, I) of data drawn from the known mixture Σ q(y) N(μ_y, I)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(K, size=n, p=q)
    x = MEANS[y] + rng.normal(size=(n, 2))
    ll = -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1) - np.log(2 * np.pi)
    return ll, y


Q_TRUE = np.array([0.4, 0.05, 0.25, 0.1, 0.15, 0.05])
P_START = np.full(K, 1.0 / K)


def test_recovers_known_q_and_error_shrinks_with_n() -> None:
    errs = {}
    for n in (200, 20000):
        e = []
        for seed in range(3):
            ll, _ = simulate(Q_TRUE, n, seed)
            res = estimate_prior_em(ll, P_START, smoothing=0.0)
            assert res.converged and not res.diverged
            e.append(np.abs(res.q - Q_TRUE).sum())
        errs[n] = float(np.mean(e))
    assert errs[20000] < 0.04
    assert errs[20000] < errs[200] / 3  # ~1/sqrt(N): a 100x larger N gives ~10x smaller error


def _gradient(ll: np.ndarray, q: np.ndarray, lam: float, p: np.ndarray) -> np.ndarray:
    L = np.exp(ll - ll.max(axis=1, keepdims=True))
    d = L @ q
    return (L / d[:, None]).sum(0) + lam * p / q


@pytest.mark.parametrize("lam", [0.0, 50.0])
def test_fixed_point_is_stationary_point_of_the_likelihood(lam: float) -> None:
    ll, _ = simulate(Q_TRUE, 3000, 7)
    p = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    res = estimate_prior_em(ll, p, smoothing=lam, tol=1e-13, max_iter=20000)
    q = res.q
    n = ll.shape[0]
    # KKT on the simplex: ∂F/∂q_k equals the multiplier N + λ on every cell with q_k > 0
    g = _gradient(ll, q, lam, p)
    active = q > 1e-6
    np.testing.assert_allclose(g[active], n + lam, rtol=1e-5)
    assert (g[~active] <= n + lam + 1e-3 * n).all()
    # and no feasible direction increases F (finite differences of the objective itself)
    f0 = marginal_log_likelihood(ll, q, smoothing=lam, smoothing_prior=p)
    assert np.isclose(f0, res.objective, rtol=1e-10)
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.normal(size=K) * active
        v -= v[active].mean() * active
        h = 1e-4 * min(q[active].min(), 1e-2)
        f1 = marginal_log_likelihood(ll, q + h * v, smoothing=lam, smoothing_prior=p)
        assert f1 <= f0 + 1e-6


def test_smoothed_fixed_point_equation() -> None:
    ll, _ = simulate(Q_TRUE, 500, 3)
    lam = 100.0
    res = estimate_prior_em(ll, P_START, smoothing=lam, tol=1e-14, max_iter=20000)
    post = np.exp(ll - ll.max(1, keepdims=True)) * res.q
    post /= post.sum(1, keepdims=True)
    np.testing.assert_allclose(res.q, (post.sum(0) + lam * P_START) / (500 + lam), atol=1e-8)


def test_plain_and_accelerated_em_agree_and_are_monotone() -> None:
    ll, _ = simulate(Q_TRUE, 2000, 11)
    a = estimate_prior_em(ll, P_START, smoothing=0.0, accelerate=True, tol=1e-13, max_iter=50000)
    b = estimate_prior_em(ll, P_START, smoothing=0.0, accelerate=False, tol=1e-13, max_iter=50000)
    np.testing.assert_allclose(a.q, b.q, atol=1e-5)
    assert a.n_iter < b.n_iter
    for r in (a, b):
        assert (np.diff(r.history) >= -1e-9 * abs(r.history[-1])).all()


def test_fused_blocked_e_step_equals_full_products(monkeypatch: pytest.MonkeyPatch) -> None:
    ll, _ = simulate(Q_TRUE, 1000, 4)
    full = estimate_prior_em(ll, P_START, smoothing=3.0, tol=1e-12)
    monkeypatch.setattr(em_mod, "_CPU_BLOCK_BYTES", 8 * K * 37)  # blocks of 37 rows
    blocked = estimate_prior_em(ll, P_START, smoothing=3.0, tol=1e-12)
    np.testing.assert_allclose(blocked.q, full.q, rtol=1e-9)
    np.testing.assert_allclose(blocked.history, full.history, rtol=1e-12)


def test_joint_shape_input_and_mle_of_exact_posteriors() -> None:
    # with point-mass likelihoods (labels observed) EM returns the empirical frequencies
    y = np.array([0, 0, 1, 3, 3, 3, 2, 0])
    ll = np.where(np.arange(4)[None, :] == y[:, None], 0.0, -np.inf).reshape(8, 2, 2)
    res = estimate_prior_em(ll, np.full((2, 2), 0.25), smoothing=0.0)
    np.testing.assert_allclose(res.q.reshape(-1), np.bincount(y, minlength=4) / 8, atol=1e-9)
    assert res.q.shape == (2, 2)


def test_non_convergence_warns_with_loglik_change() -> None:
    ll, _ = simulate(Q_TRUE, 1000, 1)
    with pytest.warns(EMConvergenceWarning, match="did not converge.*changed by"):
        res = estimate_prior_em(ll, P_START, smoothing=0.0, max_iter=2)
    assert not res.converged
    assert np.isclose(res.q.sum(), 1.0) and res.n_iter == 2


def test_divergence_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    ll, _ = simulate(Q_TRUE, 300, 2)
    values = iter(np.linspace(0.0, -1e6, 10000))
    monkeypatch.setattr(em_mod, "map_objective", lambda *a, **k: float(next(values)))
    with pytest.warns(EMConvergenceWarning, match="diverged"):
        res = estimate_prior_em(ll, P_START, smoothing=0.0, max_iter=20, accelerate=False)
    assert res.diverged
    np.testing.assert_allclose(res.q, P_START)  # the best iterate: the start


def test_small_unlabeled_set_warns_and_says_what_was_done() -> None:
    ll, _ = simulate(Q_TRUE, 4, 0)
    with pytest.warns(UserWarning, match="smoothing=0: fitted the unsmoothed"):
        estimate_prior_em(ll, P_START, smoothing=0.0)
    with pytest.warns(UserWarning, match="used λ=6"):
        res = estimate_prior_em(ll, P_START)
    assert res.smoothing == K


def test_no_warning_when_enough_data_and_auto_is_k() -> None:
    ll, _ = simulate(Q_TRUE, 500, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = estimate_prior_em(ll, P_START)
        mle = estimate_prior_em(ll, P_START, smoothing=0.0)
    assert res.smoothing == K and mle.smoothing == 0.0
    # λ = K pulls q̂ towards p
    assert np.abs(res.q - P_START).sum() < np.abs(mle.q - P_START).sum()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"log_lik": np.zeros((5, 4))}, "log_lik must have shape"),
        ({"log_lik": np.full((10, K), np.nan)}, "NaN"),
        ({"log_lik": np.full((10, K), -np.inf)}, "row 0 is -inf"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"smoothing": -1.0}, "smoothing"),
        ({"smoothing": "lots"}, "smoothing"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    args = {"log_lik": np.zeros((10, K)), "init": P_START} | kwargs
    with pytest.raises(ValueError, match=match):
        estimate_prior_em(**args)


def test_bbse_perfect_classifier_and_condition_number() -> None:
    rng = np.random.default_rng(0)
    n_classes = (2, 3)
    val = np.stack([rng.integers(0, 2, 3000), rng.integers(0, 3, 3000)], 1)
    test = np.stack([rng.integers(0, 2, 1000), (rng.random(1000) < 0.8).astype(int) * 2], 1)
    res = bbse(val, val, test, n_classes)
    flat = np.ravel_multi_index(test.T, n_classes)
    np.testing.assert_allclose(res.q.reshape(-1), np.bincount(flat, minlength=6) / 1000, atol=1e-12)
    p_val = np.bincount(np.ravel_multi_index(val.T, n_classes), minlength=6) / 3000
    assert np.isclose(res.condition_number, p_val.max() / p_val.min())
    assert res.rank == 6 and res.n_clipped == 0


def test_bbse_noisy_classifier_estimates_q() -> None:
    rng = np.random.default_rng(1)
    conf = np.array([[0.8, 0.2], [0.3, 0.7]])  # p(ŷ | y)
    yv = rng.integers(0, 2, 20000)
    pv = (rng.random(20000) > conf[yv, 0]).astype(int)
    yt = (rng.random(20000) < 0.8).astype(int)
    pt = (rng.random(20000) > conf[yt, 0]).astype(int)
    res = bbse(pv[:, None], yv[:, None], pt[:, None], (2,))
    assert abs(res.q[1] - 0.8) < 0.03


def test_bbse_bad_input() -> None:
    with pytest.raises(ValueError, match="max_cells"):
        bbse(np.zeros((3, 2), int), np.zeros((3, 2), int), np.zeros((3, 2), int), (80, 80))
    with pytest.raises(ValueError, match="val_pred has 3 rows"):
        bbse(np.zeros((3, 1), int), np.zeros((4, 1), int), np.zeros((2, 1), int), (2,))


def test_raw_scores_warn() -> None:
    lp = [np.log(np.full((4, 2), 0.5)), np.log(np.full((4, 3), 1 / 3))]
    prior = np.full((2, 3), 1 / 6)
    with pytest.warns(RawScoresWarning, match="uncalibrated"):
        ll = gmtl_log_likelihood(lp, prior)
    assert ll.shape == (4, 2, 3)
    np.testing.assert_allclose(ll, np.log(0.5) + np.log(1 / 3) - np.log(1 / 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gmtl_log_likelihood(lp, prior, assume_calibrated=True)
