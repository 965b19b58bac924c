"""adapt(): calibrate → estimate q → decode; the score model; evaluation helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from causalmtl.gmtl import JointPrior, gmtl_decode, independent_argmax
from causalmtl.gmtl.unknown_q.adapt import adapt, alpha_from_severity, decode_adapted
from causalmtl.gmtl.unknown_q.score_model import GaussianScoreModel, score_features
from causalmtl.shift.unknown_q import (
    evaluate_unknown_q,
    importance_resample,
    oracle_gain_recovered,
    q_error,
    shifted_accuracy,
)

N_CLASSES = (2, 2)
P = np.array([[0.42, 0.08], [0.08, 0.42]])  # the two labels agree in training
Q = np.array([[0.08, 0.42], [0.42, 0.08]])  # and disagree at test time


def draw(prob: np.ndarray, n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """A DMTL model whose heads leak the other task's evidence (trained under P).

    x | y ~ N(2y − 1, I) in 2-D; head t is the Bayes posterior p(y_t | x) under P, which uses
    both coordinates because the labels are correlated under P.
    """
    yi = rng.choice(4, size=n, p=prob.reshape(-1))
    y = np.stack(np.unravel_index(yi, N_CLASSES), 1)
    x = 1.0 * (2 * y - 1) + rng.normal(size=(n, 2))
    grid = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    loglik = -0.5 * ((x[:, None, :] - (2 * grid - 1)[None]) ** 2).sum(-1)  # (n, 4)
    joint = loglik + np.log(P.reshape(-1))[None]
    joint = (joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)).reshape(n, 2, 2)
    lp = [np.logaddexp.reduce(joint, axis=2), np.logaddexp.reduce(joint, axis=1)]
    return lp, y


@pytest.fixture(scope="module")
def data() -> dict:
    rng = np.random.default_rng(0)
    val = draw(P, 3000, rng)
    test = draw(Q, 3000, rng)
    return {"val": val, "test": test}


@pytest.mark.parametrize(
    ("likelihood", "calibration", "max_l1"),
    # Π_t p(y_t|x)/p(y) is only approximately p(x|y) for heads that marginalise a correlated
    # joint, so the calibrated-head likelihood is biased; the score model is exact here.
    [("score", None, 0.1), ("calibrated", "bcts", 0.3)],
)
def test_adapt_estimates_q_and_beats_dmtl(
    data: dict, likelihood: str, calibration: str, max_l1: float
) -> None:
    (vlp, vy), (tlp, ty) = data["val"], data["test"]
    res = adapt(vlp, vy, tlp, JointPrior.from_probs(P), likelihood=likelihood, calibration=calibration)
    assert res.em.converged
    assert q_error(res.q_hat, Q)["l1"] < max_l1
    acc_dmtl = (independent_argmax(tlp) == ty).mean()
    acc_adapt = (res.labels == ty).mean()
    acc_oracle = (gmtl_decode(tlp, P, q=Q).labels == ty).mean()
    assert acc_adapt > acc_dmtl + 0.05
    assert acc_adapt > acc_oracle - 0.02
    assert res.tau < 0 and res.alpha > 0.5  # the estimated shift reverses the ranking


def test_q_hat_equal_p_gives_independent_argmax_exactly(data: dict) -> None:
    (vlp, vy), (tlp, _) = data["val"], data["test"]
    p = JointPrior.from_probs(P)
    res = adapt(vlp, vy, tlp, p, likelihood="calibrated", calibration="vector")
    pred = decode_adapted(res, tlp, q=p)
    cal = res.calibrator.transform(tlp)
    np.testing.assert_array_equal(pred, independent_argmax(cal))
    # and with q̂ ≠ p the decode differs from the per-task argmax on some rows
    assert (decode_adapted(res, tlp) != independent_argmax(cal)).any()


def test_no_shift_keeps_dmtl_accuracy(data: dict) -> None:
    (vlp, vy) = data["val"]
    rng = np.random.default_rng(5)
    tlp, ty = draw(P, 3000, rng)
    res = adapt(vlp, vy, tlp, JointPrior.from_probs(P))
    assert q_error(res.q_hat, P)["l1"] < 0.1
    assert (res.labels == ty).mean() > (independent_argmax(tlp) == ty).mean() - 0.01
    assert res.alpha < 0.2


def test_alpha_from_severity_endpoints() -> None:
    p = np.array([0.4, 0.3, 0.2, 0.1])
    assert alpha_from_severity(p, p) == pytest.approx((0.0, 1.0), abs=1e-12)
    a, tau = alpha_from_severity(p, p[::-1])
    assert np.isclose(tau, -1.0) and np.isclose(a, 1.0)


def test_adapt_bad_input(data: dict) -> None:
    (vlp, vy), (tlp, _) = data["val"], data["test"]
    with pytest.raises(ValueError, match="val_labels has 3 task columns"):
        adapt(vlp, np.zeros((3000, 3), int), tlp)
    with pytest.raises(ValueError, match=r"test_log_probs has classes per task \(2, 3\)"):
        adapt(vlp, vy, [tlp[0], np.log(np.full((3000, 3), 1 / 3))])
    with pytest.raises(ValueError, match="likelihood must be"):
        adapt(vlp, vy, tlp, likelihood="oracle")
    with pytest.raises(ValueError, match="prior has n_classes"):
        adapt(vlp, vy, tlp, np.full(8, 1 / 8).reshape(2, 2, 2))


def test_calibrated_without_calibration_warns(data: dict) -> None:
    (vlp, vy), (tlp, _) = data["val"], data["test"]
    with pytest.warns(UserWarning, match="uncalibrated"):
        adapt(vlp, vy, tlp, P, likelihood="calibrated", calibration=None)


def test_score_model_matches_brute_force_gaussian() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = np.stack([rng.integers(0, 3, n), rng.integers(0, 2, n)], 1)
    lp = [rng.normal(size=(n, 3)) + np.eye(3)[y[:, 0]], rng.normal(size=(n, 2)) + np.eye(2)[y[:, 1]]]
    sm = GaussianScoreModel(shrinkage=0.0).fit(lp, y)
    ll = sm.log_likelihood(lp)
    s = score_features(lp)
    means = sm.means
    for i in (0, 7, 123):
        for a in range(3):
            for b in range(2):
                want = multivariate_normal(means[a, b], sm.cov_).logpdf(s[i])
                assert np.isclose(ll[i, a, b], want, rtol=1e-10)


def test_score_model_single_task_means_are_class_means() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 600)[:, None]
    lp = [rng.normal(size=(600, 3)) * 2 + 3 * np.eye(3)[y[:, 0]]]
    sm = GaussianScoreModel(shrinkage=0.0).fit(lp, y)
    s = score_features(lp)
    for c in range(3):
        np.testing.assert_allclose(sm.means[c], s[y[:, 0] == c].mean(0), atol=1e-10)
    resid = s - sm.means[y[:, 0]]
    np.testing.assert_allclose(sm.cov_, resid.T @ resid / (600 - 3), atol=1e-10)


def test_score_model_bad_input() -> None:
    lp = [np.zeros((10, 2)), np.zeros((10, 2))]
    y = np.zeros((10, 2), int)
    with pytest.raises(ValueError, match="never contain class 1 of task 0"):
        GaussianScoreModel().fit(lp, y)
    with pytest.raises(ValueError, match="not fitted"):
        GaussianScoreModel().log_likelihood(lp)
    y[5:] = 1
    sm = GaussianScoreModel().fit([lp[0] + np.arange(10)[:, None] % 3, lp[1] + np.arange(10)[:, None] % 4], y)
    with pytest.raises(ValueError, match=r"fitted for n_classes=\(2, 2\)"):
        sm.log_likelihood([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(ValueError, match="prior has n_classes"):
        sm.posterior(lp, np.full(8, 1 / 8).reshape(2, 2, 2))
    post = sm.posterior(lp, np.full((2, 2), 0.25))
    np.testing.assert_allclose(post.sum(axis=(1, 2)), 1.0)


def test_importance_resample_follows_q() -> None:
    rng = np.random.default_rng(3)
    labels = np.stack([rng.integers(0, 2, 5000), (rng.random(5000) < 0.2).astype(int)], 1)
    idx, q_eff = importance_resample(labels, Q, 40000, seed=4)
    freq = np.bincount(np.ravel_multi_index(labels[idx].T, N_CLASSES), minlength=4) / 40000
    np.testing.assert_allclose(freq, Q.reshape(-1), atol=0.01)
    np.testing.assert_array_equal(q_eff.probs, JointPrior.from_probs(Q).probs)
    idx2, _ = importance_resample(labels, Q, 40000, seed=4)
    np.testing.assert_array_equal(idx, idx2)


def test_importance_resample_warns_on_unrepresented_cells() -> None:
    labels = np.array([[0, 0], [1, 1], [0, 0]])
    with pytest.warns(UserWarning, match="mass 0.84"):
        _, q_eff = importance_resample(labels, Q, 10, seed=0)
    np.testing.assert_allclose(q_eff.probs, [[0.5, 0], [0, 0.5]])


def test_shifted_accuracy_and_errors() -> None:
    labels = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 1]])
    pred = np.array([[0, 0], [0, 0], [0, 0], [1, 1], [0, 1]])
    emp = np.bincount(np.ravel_multi_index(labels.T, N_CLASSES), minlength=4).reshape(2, 2) / 5
    assert np.isclose(shifted_accuracy(pred, labels, emp), (pred == labels).mean())
    # under q concentrated on (1, 1): rows 3 and 4, accuracies 1 and 0.5
    q = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert np.isclose(shifted_accuracy(pred, labels, q), 0.75)
    assert q_error(P, Q) == {"l1": pytest.approx(1.36), "tv": pytest.approx(0.68)}
    assert oracle_gain_recovered(0.8, 0.9, 0.7) == pytest.approx(0.5)
    assert np.isnan(oracle_gain_recovered(0.8, 0.7, 0.7))


def test_evaluate_unknown_q_end_to_end(data: dict) -> None:
    (vlp, vy), (plp, py) = data["val"], draw(P, 3000, np.random.default_rng(9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = evaluate_unknown_q(vlp, vy, plp, py, P, Q, n_unlabeled=2000, seed=0)
    assert out["acc_oracle_q"] > out["acc_dmtl"] + 0.05
    assert out["recovered"] > 0.8
    assert out["l1"] < 0.2 and np.isclose(out["tv"], out["l1"] / 2)
    assert out["acc_best_alpha"] >= out["acc_dmtl"]


def test_correlation_shift_flips_and_removes() -> None:
    from causalmtl.shift.unknown_q import correlation_shift, strongest_pairs

    np.testing.assert_allclose(correlation_shift(P).probs, Q, atol=1e-12)  # flip: odds ratio inverted
    rng = np.random.default_rng(0)
    p3 = JointPrior.from_probs(rng.dirichlet(np.ones(12)).reshape(2, 3, 2))
    a, b = strongest_pairs(p3, 1)[0]
    q = correlation_shift(p3, 1, mode="remove")
    pab = q.marginalize([a, b]).probs
    np.testing.assert_allclose(pab, np.outer(pab.sum(1), pab.sum(0)), atol=1e-12)
    np.testing.assert_allclose(pab.sum(1), p3.marginal(a), atol=1e-12)  # marginals kept
    with pytest.raises(ValueError, match="mode must be"):
        correlation_shift(P, mode="swap")
    with pytest.raises(ValueError, match="n_pairs must be"):
        correlation_shift(P, n_pairs=2)


def test_adapt_with_a_tree_prior_gives_a_tree_estimate() -> None:
    from causalmtl.gmtl.priors.tree import TreePrior

    rng = np.random.default_rng(0)
    n_classes = (2, 2, 2)
    edges = ((0, 1), (1, 2))
    p = TreePrior.random(n_classes, edges=edges, seed=1, concentration=0.7)
    q = TreePrior.random(n_classes, edges=edges, seed=2, concentration=0.7)
    grid = np.stack(np.unravel_index(np.arange(8), n_classes), 1)

    def draw(prior: TreePrior, n: int) -> tuple[list[np.ndarray], np.ndarray]:
        yi = rng.choice(8, size=n, p=prior.probs.reshape(-1) / prior.probs.sum())
        x = 1.5 * (2 * grid[yi] - 1) + rng.normal(size=(n, 3))
        return [np.stack([-x[:, t], x[:, t]], 1) for t in range(3)], grid[yi]

    (vlp, vy), (tlp, ty) = draw(p, 4000), draw(q, 4000)
    res = adapt(vlp, vy, tlp, p, calibration=None)
    assert res.q_tree is not None and res.q_tree.edges == p.edges
    np.testing.assert_allclose(res.q_hat.probs, res.q_tree.probs / res.q_tree.probs.sum(), atol=1e-12)
    from causalmtl.gmtl.unknown_q.tree_em import edge_l1

    assert edge_l1(res.q_tree, q.probs) < 0.08
    assert (res.labels == ty).mean() >= (independent_argmax(tlp) == ty).mean()
