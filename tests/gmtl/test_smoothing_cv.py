"""smoothing="cv": λ chosen by held-out likelihood of the unlabeled scores, fall-back to p."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from causalmtl.gmtl import JointPrior, gmtl_decode
from causalmtl.gmtl.priors.tree import TreePrior
from causalmtl.gmtl.unknown_q.adapt import adapt, decode_adapted
from causalmtl.gmtl.unknown_q.em import estimate_prior_em
from causalmtl.gmtl.unknown_q.smoothing_cv import heldout_log_likelihood, select_smoothing_cv

MEANS = np.array([-3.0, -1.0, 1.0, 3.0])
P = np.full(4, 0.25)
Q = np.array([0.7, 0.1, 0.1, 0.1])


def gaussian_log_lik(n: int, q: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Exact log p(x|y) (up to a row constant) of x ~ N(scale·μ_y, 1), y ~ q."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=q)
    x = rng.normal(scale * MEANS[y], 1.0)
    return -0.5 * (x[:, None] - scale * MEANS[None, :]) ** 2


def test_heldout_log_likelihood_matches_brute_force() -> None:
    ll = gaussian_log_lik(50, Q, 1.0, seed=0)
    got = heldout_log_likelihood(ll, Q)
    want = np.log((np.exp(ll) * Q[None]).sum(1))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_plenty_of_informative_data_picks_small_lambda_and_adapts() -> None:
    ll = gaussian_log_lik(4000, Q, 1.0, seed=1)
    res = select_smoothing_cv(ll, P, seed=0)
    assert not res.fallback
    assert res.ratio <= 0.1  # shrinkage weight at most a tenth of the data
    assert res.gain > 0.05 and res.z > 5
    assert res.smoothing == pytest.approx(res.ratio * 4000)
    # held-out log-likelihood: p (last) is clearly worse than the chosen λ
    assert res.heldout[-1] < res.heldout.max() - 0.05
    q_hat = estimate_prior_em(ll, P, smoothing=res.smoothing).q
    assert np.abs(q_hat - Q).sum() < 0.1


def test_scores_independent_of_labels_fall_back_to_p() -> None:
    rng = np.random.default_rng(2)
    ll = rng.normal(size=(400, 4))  # "likelihood" that is noise: carries no information on y
    res = select_smoothing_cv(ll, P, seed=0)
    assert res.fallback
    assert np.isinf(res.ratio) and np.isinf(res.smoothing)
    assert res.reason


def test_tiny_weak_unlabeled_set_falls_back_to_p() -> None:
    # 12 rows, classes barely separated: EM on them would move q̂, but the gain does not hold up
    ll = gaussian_log_lik(12, Q, 0.05, seed=3)
    res = select_smoothing_cv(ll, P, n_folds=3, seed=0)
    assert res.fallback


def test_deterministic_given_seed_and_generator() -> None:
    ll = gaussian_log_lik(300, Q, 0.5, seed=4)
    a = select_smoothing_cv(ll, P, seed=7)
    b = select_smoothing_cv(ll, P, seed=7)
    c = select_smoothing_cv(ll, P, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.heldout, b.heldout)
    np.testing.assert_array_equal(a.heldout, c.heldout)
    assert (a.ratio, a.gain, a.z, a.fallback) == (b.ratio, b.gain, b.z, b.fallback)
    d = select_smoothing_cv(ll, P, seed=8)
    assert not np.array_equal(a.heldout, d.heldout)  # the folds do depend on the seed


def _two_task_scores(n: int, prob: np.ndarray, sep: float, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    yi = rng.choice(4, size=n, p=prob.reshape(-1))
    y = np.stack(np.unravel_index(yi, (2, 2)), 1)
    x = sep * (2 * y - 1) + rng.normal(size=(n, 2))
    lp = [np.stack([-np.logaddexp(0, 2 * sep * x[:, t]), -np.logaddexp(0, -2 * sep * x[:, t])], 1) for t in range(2)]
    return lp, y


def test_adapt_cv_fallback_decodes_with_training_prior() -> None:
    p_tab = np.array([[0.42, 0.08], [0.08, 0.42]])
    vlp, vy = _two_task_scores(2000, p_tab, 1.0, seed=5)
    rng = np.random.default_rng(6)
    tlp = [np.log(rng.dirichlet([1, 1], size=30)) for _ in range(2)]  # scores unrelated to anything
    prior = JointPrior.fit(vy, (2, 2), pseudocount=1.0)
    res = adapt(vlp, vy, tlp, prior, smoothing="cv", cv_folds=3, seed=0)
    assert res.fallback and res.cv is not None and res.cv.fallback
    np.testing.assert_array_equal(res.q_hat.probs, prior.probs)
    # fail safe = no adaptation: the independent per-task argmax (DMTL), here and in decode_adapted
    want = np.stack([np.argmax(x, axis=1) for x in tlp], 1)
    np.testing.assert_array_equal(res.labels, want)
    np.testing.assert_array_equal(res.alpha_labels, want)
    np.testing.assert_array_equal(decode_adapted(res, tlp), want)
    assert res.em.n_iter == 0 and np.isinf(res.em.smoothing)
    # an explicit q still goes through the score model
    ll = res.score_model.log_likelihood(tlp)
    q_other = JointPrior.from_probs(np.array([[0.1, 0.4], [0.4, 0.1]]))
    got = decode_adapted(res, tlp, q=q_other)
    np.testing.assert_array_equal(got, gmtl_decode(ll, JointPrior.uniform((2, 2)), q=q_other, normalized=False).labels)


def test_adapt_cv_adapts_under_a_real_shift() -> None:
    p_tab = np.array([[0.42, 0.08], [0.08, 0.42]])
    q_tab = np.array([[0.08, 0.42], [0.42, 0.08]])
    vlp, vy = _two_task_scores(3000, p_tab, 1.5, seed=7)
    tlp, ty = _two_task_scores(3000, q_tab, 1.5, seed=8)
    prior = JointPrior.fit(vy, (2, 2), pseudocount=1.0)
    res = adapt(vlp, vy, tlp, prior, smoothing="cv", seed=0)
    assert not res.fallback
    assert np.abs(res.q_hat.probs - q_tab).sum() < 0.15
    plain = gmtl_decode(tlp, prior, alpha=0.0).labels
    assert (res.labels == ty).mean() > (np.asarray(plain) == ty).mean()


def test_adapt_cv_with_tree_prior() -> None:
    grid = np.array(list(itertools.product([0, 1], repeat=3)))
    rng = np.random.default_rng(9)
    ytr = grid[rng.choice(8, size=3000, p=np.array([6, 1, 1, 2, 2, 1, 1, 6]) / 20)]
    vlp, vy = [], ytr[:1500]
    tree = TreePrior.fit(ytr, (2, 2, 2), pseudocount=1.0)
    x = 1.5 * (2 * ytr - 1) + rng.normal(size=ytr.shape)
    lp = [np.stack([-np.logaddexp(0, 3 * x[:, t]), -np.logaddexp(0, -3 * x[:, t])], 1) for t in range(3)]
    vlp = [a[:1500] for a in lp]
    tlp = [a[1500:1560] for a in lp]  # unshifted, small: no estimate beats p reliably
    res = adapt(vlp, vy, tlp, tree, smoothing="cv", cv_folds=3, seed=0)
    assert res.q_tree is not None and res.cv is not None
    if res.fallback:
        assert res.q_tree is tree
    assert np.isclose(res.q_hat.probs.sum(), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_folds": 1}, "n_folds"),
        ({"n_folds": 2.5}, "n_folds"),
        ({"n_folds": 1000}, "n_folds"),
        ({"grid": []}, "grid"),
        ({"grid": [0.1, 0.0]}, "grid"),
        ({"grid": [0.1, float("inf")]}, "grid"),
        ({"z_threshold": float("nan")}, "z_threshold"),
        ({"min_gain": -0.1}, "min_gain"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict, match: str) -> None:
    ll = gaussian_log_lik(100, Q, 1.0, seed=10)
    with pytest.raises(ValueError, match=match):
        select_smoothing_cv(ll, P, **kwargs)


def test_bad_log_lik_shape_and_adapt_smoothing_string() -> None:
    with pytest.raises(ValueError, match="log_lik"):
        select_smoothing_cv(np.zeros((10, 3)), P)
    vlp, vy = _two_task_scores(200, np.full((2, 2), 0.25), 1.0, seed=11)
    with pytest.raises(ValueError, match="smoothing"):
        adapt(vlp, vy, vlp, smoothing="cross-val")  # type: ignore[arg-type]
