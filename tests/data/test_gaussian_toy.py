"""The GMTL §4 example: exact densities, moments, and the Figure 2 decision boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from causalmtl.data import (
    GaussianToy,
    bivariate_bernoulli,
    covariance_range,
    decision_boundaries,
    make_gaussian_toy,
    plot_decision_boundaries,
)


def brute_joint(toy: GaussianToy, x: np.ndarray) -> np.ndarray:
    """p(x, y, y') from scipy's normal pdf, independently of the module's formulas."""
    out = np.empty((len(x), 2, 2))
    for y in range(2):
        for yp in range(2):
            z = 2 * y + yp
            out[:, y, yp] = norm.pdf(x, loc=z, scale=np.sqrt(toy.sigma2[z])) * toy.joint_probs[y, yp]
    return out


@pytest.mark.parametrize("theta,theta_prime,cov", [(0.5, 0.5, 0.1), (0.3, 0.8, -0.14), (0.3, 0.8, 0.06)])
def test_table_has_requested_moments(theta, theta_prime, cov):
    p = bivariate_bernoulli(theta, theta_prime, cov)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    ey, eyp = p[1].sum(), p[:, 1].sum()
    assert ey == pytest.approx(theta, abs=1e-12)
    assert eyp == pytest.approx(theta_prime, abs=1e-12)
    assert p[1, 1] - ey * eyp == pytest.approx(cov, abs=1e-12)


def test_covariance_range_and_infeasible_cov():
    assert covariance_range(0.5, 0.5) == pytest.approx((-0.25, 0.25))
    lo, hi = covariance_range(0.3, 0.8)
    assert lo == pytest.approx(-0.14) and hi == pytest.approx(0.06)
    with pytest.raises(ValueError, match=r"cov = 0\.1 is infeasible.*\[-0\.14, 0\.06\]"):
        GaussianToy(theta=0.3, theta_prime=0.8, cov=0.1)
    with pytest.raises(ValueError, match="theta must lie in"):
        GaussianToy(theta=1.2)
    with pytest.raises(ValueError, match="sigma2"):
        GaussianToy(sigma2=(0.4, 0.4, 0.6, -1.0))


def test_sample_moments_match_theta_and_cov():
    toy = GaussianToy(theta=0.4, theta_prime=0.6, cov=0.15)
    labels, x = toy.sample(200_000, seed=1)
    n = len(labels)
    y, yp = labels[:, 0], labels[:, 1]
    se = 0.5 / np.sqrt(n)
    assert abs(y.mean() - 0.4) < 5 * se
    assert abs(yp.mean() - 0.6) < 5 * se
    assert abs(np.cov(y, yp)[0, 1] - 0.15) < 5 * se
    # X | z has mean z and variance sigma_z^2
    z = 2 * y + yp
    for k in range(4):
        xs = x[z == k]
        assert abs(xs.mean() - k) < 5 * np.sqrt(toy.sigma2[k] / len(xs))
        assert abs(xs.var() - toy.sigma2[k]) < 5 * toy.sigma2[k] * np.sqrt(2 / len(xs))


def test_same_seed_same_sample():
    toy = GaussianToy(cov=-0.1)
    a, b = toy.sample(100, seed=7), toy.sample(100, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], toy.sample(100, seed=8)[1])


def test_likelihoods_and_marginal_integrate_to_one():
    toy = GaussianToy(cov=0.2)
    for y in range(2):
        for yp in range(2):
            val, _ = integrate.quad(lambda v, y=y, yp=yp: np.exp(toy.log_likelihood([v])[0, y, yp]), -20, 25)
            assert val == pytest.approx(1.0, abs=1e-9)
    val, _ = integrate.quad(lambda v: np.exp(toy.log_marginal([v])[0]), -20, 25)
    assert val == pytest.approx(1.0, abs=1e-9)


def test_posteriors_sum_to_one_and_match_bayes_rule():
    toy = GaussianToy(theta=0.3, theta_prime=0.8, cov=-0.1)
    x = np.linspace(-3, 6, 101)
    post = toy.log_joint_posterior(x)
    assert post.shape == (101, 2, 2)
    np.testing.assert_allclose(np.exp(post).sum(axis=(1, 2)), 1.0, atol=1e-12)
    brute = brute_joint(toy, x)
    np.testing.assert_allclose(np.exp(post), brute / brute.sum(axis=(1, 2), keepdims=True), rtol=1e-9)
    py, pyp = toy.log_posteriors(x)
    np.testing.assert_allclose(np.exp(py).sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.exp(pyp).sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.exp(py), brute.sum(2) / brute.sum((1, 2))[:, None], rtol=1e-9)
    np.testing.assert_allclose(np.exp(pyp), brute.sum(1) / brute.sum((1, 2))[:, None], rtol=1e-9)


def test_gmtl_boundary_invariant_dmtl_boundary_moves():
    covs = np.linspace(-0.2, 0.2, 9)
    res = decision_boundaries(covs)
    assert np.all(np.isfinite(res["dmtl"])) and np.all(np.isfinite(res["gmtl"]))
    assert np.ptp(res["gmtl"]) < 1e-6
    assert np.ptp(res["dmtl"]) > 1e-2
    assert np.all(np.diff(res["dmtl"]) < -1e-6)  # moves monotonically with Cov
    # GMTL α=1 compares N(x; 1, 0.4) with N(x; 2, 0.6): root of a quadratic (analytic)
    # log N(x;1,a) = log N(x;2,b)  <=>  c2 x^2 + c1 x + c0 = 0
    a, b = 0.4, 0.6
    roots = np.roots([-1 / (2 * a) + 1 / (2 * b), 1 / a - 2 / b, -1 / (2 * a) + 4 / (2 * b) + 0.5 * np.log(b / a)])
    analytic = roots[(roots > 0) & (roots < 3)].real
    assert analytic.size == 1
    np.testing.assert_allclose(res["gmtl"], analytic[0], atol=1e-9)
    # each DMTL boundary is where p(Y=1|x) = 1/2
    for c, xb in zip(covs, res["dmtl"]):
        assert np.exp(GaussianToy(cov=c).log_posteriors([xb])[0][0, 1]) == pytest.approx(0.5, abs=1e-9)


def test_dmtl_equals_gmtl_when_y_determines_z_pairing():
    # Cov = -0.25: only (0,1) and (1,0) occur, so DMTL compares N(1,.4) with N(2,.6) as GMTL does
    res = decision_boundaries([-0.25])
    assert res["dmtl"][0] == pytest.approx(res["gmtl"][0], abs=1e-9)


def test_gmtl_prediction_is_y_component_of_likelihood_argmax():
    toy = GaussianToy(cov=0.2)
    x = np.linspace(-2, 5, 701)
    ll = toy.log_likelihood(x).reshape(len(x), 4)
    y_of_argmax = ll.argmax(1) // 2
    np.testing.assert_array_equal(toy.predict(x, "gmtl"), y_of_argmax)


def test_boundary_missing_is_nan_and_tail_roots_listed():
    toy = GaussianToy(cov=0.0)
    assert np.isnan(toy.boundary("dmtl", interval=(-1.0, 0.5)))
    roots = toy.boundary_roots("dmtl", interval=(-20.0, 20.0))
    assert len(roots) == 2 and roots[0] < -5  # far-left root where the wider class wins again
    with pytest.raises(ValueError, match="method must be"):
        toy.decision_function([0.0], "stl")
    with pytest.raises(ValueError, match="interval"):
        toy.boundary_roots("dmtl", interval=(2.0, 1.0))


def test_plot_writes_png(tmp_path):
    path = tmp_path / "fig2.png"
    fig = plot_decision_boundaries(path, covs=np.linspace(-0.2, 0.2, 5))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["DMTL", "GMTL (α = 1)"]
    np.testing.assert_allclose(lines[0].get_ydata(), decision_boundaries(np.linspace(-0.2, 0.2, 5))["dmtl"])


def test_make_gaussian_toy_splits():
    splits = make_gaussian_toy(n_train=4000, n_valid=100, n_test=4000, cov_train=0.2, cov_test=-0.2, seed=3)
    assert [int(s.env[0]) for _, s in splits] == [0, 1, 2]
    tables = splits.joint_tables()
    # agreement 0.9 in train, 0.1 in test (cov ±0.2 with θ = θ' = 0.5)
    assert abs(np.trace(tables["train"]) - 0.9) < 5 * np.sqrt(0.09 / 4000)
    assert abs(np.trace(tables["test"]) - 0.1) < 5 * np.sqrt(0.09 / 4000)
    assert splits.train.inputs.shape == (4000, 1)
