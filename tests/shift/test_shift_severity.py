"""Severity τ (§5.5) pinned to brute-force O(K²) definitions of both variants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from causalmtl.shift import QDraws, ShuffleNoiseSampler, severity, weighted_tau


def _lex_rank(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Rank 0 = largest primary value, ties broken by larger secondary (decreasing lexicographic)."""
    order = sorted(range(len(primary)), key=lambda i: (-primary[i], -secondary[i]))
    rank = np.empty(len(primary), dtype=int)
    for r, i in enumerate(order):
        rank[i] = r
    return rank


def _brute_tau(x: np.ndarray, y: np.ndarray, rank: np.ndarray, additive: bool) -> float:
    """Vigna's weighted τ with hyperbolic weights 1/(r+1), written pair by pair."""
    w = 1.0 / (rank + 1.0)
    num = dx = dy = 0.0
    K = len(x)
    for i in range(K):
        for j in range(i + 1, K):
            wij = w[i] + w[j] if additive else w[i] * w[j]
            num += wij * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            dx += wij * (x[i] != x[j])
            dy += wij * (y[i] != y[j])
    return num / np.sqrt(dx * dy)


def _brute_scipy_default(x: np.ndarray, y: np.ndarray) -> float:
    """Additive τ_h averaged over the rankings by (x, y) and by (y, x)."""
    return 0.5 * (
        _brute_tau(x, y, _lex_rank(x, y), additive=True)
        + _brute_tau(x, y, _lex_rank(y, x), additive=True)
    )


def _brute_shieh(x: np.ndarray, y: np.ndarray) -> float:
    """Shieh (1998): Σ_{i≠j} w_i w_j sgn(x_i−x_j) sgn(y_i−y_j) / Σ_{i≠j} w_i w_j, ranks by x."""
    w = 1.0 / (_lex_rank(x, y) + 1.0)
    num = den = 0.0
    for i in range(len(x)):
        for j in range(len(x)):
            if i != j:
                num += w[i] * w[j] * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                den += w[i] * w[j]
    return num / den


@pytest.mark.parametrize("K", [2, 7, 40])
def test_scipy_variant_matches_brute_force(K):
    rng = np.random.default_rng(K)
    x, y = rng.normal(size=K), rng.normal(size=K)
    assert weighted_tau(x, y) == pytest.approx(_brute_scipy_default(x, y), abs=1e-12)


def test_scipy_variant_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=30), 0)  # many ties in p
    y = rng.normal(size=30)
    assert len(np.unique(x)) < 30
    assert weighted_tau(x, y) == pytest.approx(_brute_scipy_default(x, y), abs=1e-12)


@pytest.mark.parametrize("K", [3, 12, 40])
def test_shieh_variant_matches_brute_force(K):
    rng = np.random.default_rng(100 + K)
    x, y = rng.normal(size=K), rng.normal(size=K)
    assert weighted_tau(x, y, variant="shieh") == pytest.approx(_brute_shieh(x, y), abs=1e-12)


def test_shieh_uses_p_as_reference_ranking():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=25), rng.normal(size=25)
    # Swapping the arguments changes the reference ranking, hence (generically) the value.
    assert weighted_tau(x, y, "shieh") != pytest.approx(weighted_tau(y, x, "shieh"), abs=1e-6)
    # The default variant is symmetric.
    assert weighted_tau(x, y) == pytest.approx(weighted_tau(y, x), abs=1e-12)


@pytest.mark.parametrize("variant", ["scipy", "shieh"])
def test_identity_and_reversal(variant):
    lp = np.log(np.array([0.4, 0.25, 0.2, 0.1, 0.05]))
    assert weighted_tau(lp, lp, variant) == pytest.approx(1.0)
    assert weighted_tau(lp, lp[::-1], variant) == pytest.approx(-1.0)


@pytest.mark.parametrize("variant", ["scipy", "shieh"])
def test_invariant_to_normalisation_and_monotone_maps(variant):
    rng = np.random.default_rng(0)
    lp, lq = rng.normal(size=20), rng.normal(size=20)
    t = weighted_tau(lp, lq, variant)
    assert weighted_tau(lp - logsumexp(lp), lq + 3.0, variant) == pytest.approx(t, abs=1e-12)
    assert weighted_tau(np.exp(lp), np.exp(lq), variant) == pytest.approx(t, abs=1e-12)


def test_batch_matches_single_calls_and_accepts_qdraws():
    rng = np.random.default_rng(1)
    lp = np.log(rng.dirichlet(np.ones(24)))
    draws = ShuffleNoiseSampler().sample(lp, 6, seed=2)
    batch = severity(lp, draws)
    assert batch.shape == (6,)
    np.testing.assert_allclose(
        batch, [weighted_tau(lp, r) for r in draws.log_q], rtol=0, atol=1e-12
    )
    shaped = severity(lp.reshape(4, 6), draws.log_q.reshape(6, 4, 6), variant="shieh")
    np.testing.assert_allclose(shaped, [weighted_tau(lp, r, "shieh") for r in draws.log_q])
    assert isinstance(draws, QDraws)


@pytest.mark.parametrize("variant", ["scipy", "shieh"])
@pytest.mark.parametrize(
    "K, x_ties", [(2, False), (5, True), (300, False), (300, True), (700, True)]
)
def test_fast_method_equals_scipy(variant, K, x_ties):
    """The vectorised batch computation is the same statistic as scipy.stats.weightedtau."""
    rng = np.random.default_rng(K + 7 * x_ties)
    lp = rng.normal(size=K)
    if x_ties:
        lp = np.round(lp, 0)  # many classes share one p value (as a smoothed sparse prior does)
    lq = np.vstack([rng.normal(size=(6, K)), lp + 1e-3 * rng.normal(size=(1, K)), lp[::-1][None]])
    fast = severity(lp, lq, variant, chunk_size=3)
    ref = severity(lp, lq, variant, method="scipy")
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    assert np.all(np.abs(fast) <= 1 + 1e-12)


@pytest.mark.parametrize("variant", ["scipy", "shieh"])
def test_fast_method_with_ties_in_q_and_zero_probabilities(variant):
    """Ties in q, ties in both p and q, and -inf (classes of probability 0) in p and q."""
    rng = np.random.default_rng(9)
    lp = np.round(rng.normal(size=60), 1)
    lp[[3, 17, 40]] = -np.inf
    rows = [lp, np.round(rng.normal(size=60), 0), rng.normal(size=60), lp[::-1]]
    with_zeros = rng.normal(size=60)
    with_zeros[rng.random(60) < 0.3] = -np.inf
    rows.append(with_zeros)
    lq = np.vstack(rows)
    fast = severity(lp, lq, variant, chunk_size=2)
    np.testing.assert_allclose(fast, severity(lp, lq, variant, method="scipy"), rtol=0, atol=1e-12)
    assert fast[0] == pytest.approx(1.0)


def test_brute_force_definitions_hold_with_ties_in_both():
    rng = np.random.default_rng(11)
    x, y = np.round(rng.normal(size=35), 0), np.round(rng.normal(size=35), 0)
    assert weighted_tau(x, y) == pytest.approx(_brute_scipy_default(x, y), abs=1e-12)
    assert weighted_tau(x, y, "shieh") == pytest.approx(
        _brute_tau(x, y, _lex_rank(x, y), additive=False), abs=1e-12
    )
    np.testing.assert_allclose(severity(x, y[None]), [_brute_scipy_default(x, y)], atol=1e-12)


def test_variants_differ_on_shifted_priors():
    rng = np.random.default_rng(4)
    lp = np.log(rng.dirichlet(np.ones(200) * 0.3))
    draws = ShuffleNoiseSampler().sample(lp, 20, seed=0)
    a, b = severity(lp, draws), severity(lp, draws, "shieh")
    assert np.all((a >= -1) & (a <= 1)) and np.all((b >= -1) & (b <= 1))
    assert np.max(np.abs(a - b)) > 0.05


def test_bad_input():
    with pytest.raises(ValueError, match="variant"):
        weighted_tau([0.0, 1.0], [1.0, 0.0], variant="kendall")
    with pytest.raises(ValueError, match="log_q has 3"):
        weighted_tau([0.0, 1.0], [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        weighted_tau([0.0, np.nan], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(D, 3\)"):
        severity(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="method"):
        severity(np.zeros(3), np.zeros((2, 3)), method="numba")
    with pytest.raises(ValueError, match="chunk_size"):
        severity(np.zeros(3), np.zeros((2, 3)), chunk_size=0)


@pytest.mark.parametrize("variant", ["scipy", "shieh"])
def test_both_fast_paths_agree_with_scipy_without_ties(variant):
    """The general (tie-aware) path also covers tie-free rows; both must give scipy's value."""
    from causalmtl.shift.severity import _tau_general, _tau_untied

    rng = np.random.default_rng(21)
    x = np.round(rng.normal(size=150), 1)  # ties in p only
    Y = rng.normal(size=(4, 150))
    ref = severity(x, Y, variant, method="scipy")
    np.testing.assert_allclose(_tau_general(x, Y, variant), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_tau_untied(x, Y, variant), ref, rtol=0, atol=1e-12)
    assert np.isnan(_tau_untied(x, np.round(Y, 0), variant)).all()  # tied rows are left out
