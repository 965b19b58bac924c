"""q sampling (§5.6): the authors' protocol draw for draw, and the Dirichlet protocol."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from causalmtl.gmtl import JointPrior
from causalmtl.shift import DirichletSampler, ShuffleNoiseSampler, make_sampler, sample_q


def _authors_protocol(log_p: np.ndarray, n: int, seed: int, shuffle_ub=0.5, sd_ub=5.0):
    """A literal transcription of the protocol in the issue (one draw at a time)."""
    rng = np.random.RandomState(seed)
    K = len(log_p)
    out = []
    for _ in range(n):
        s = rng.uniform(0, shuffle_ub)
        idx = rng.choice(K, int(2 * s * K), replace=False)
        if len(idx) % 2 == 1:
            idx = idx[:-1]
        half = len(idx) // 2
        z = log_p.copy()
        for a, b in zip(idx[:half], idx[half:]):
            z[a], z[b] = log_p[b], log_p[a]
        sd = rng.uniform(1e-12, sd_ub)
        z = z + rng.normal(0, sd, K)
        out.append(softmax(z))
    return np.array(out)


@pytest.fixture
def log_p() -> np.ndarray:
    return np.log(np.random.default_rng(0).dirichlet(np.ones(30)))


def test_reproduces_authors_draws_exactly(log_p):
    q = ShuffleNoiseSampler().sample(log_p, 25, seed=7).q
    np.testing.assert_allclose(q, _authors_protocol(log_p, 25, 7), rtol=1e-12, atol=0)


def test_bounds_are_passed_through(log_p):
    q = ShuffleNoiseSampler(shuffle_ub=0.3, sd_ub=0.5).sample(log_p, 10, seed=3).q
    np.testing.assert_allclose(q, _authors_protocol(log_p, 10, 3, 0.3, 0.5), rtol=1e-12, atol=0)


def test_fixed_seed_identical_and_prefix_stable(log_p):
    s = ShuffleNoiseSampler()
    a, b = s.sample(log_p, 8, seed=11), s.sample(log_p, 8, seed=11)
    np.testing.assert_array_equal(a.log_q, b.log_q)
    np.testing.assert_array_equal(s.sample(log_p, 3, seed=11).log_q, a.log_q[:3])
    assert not np.allclose(s.sample(log_p, 8, seed=12).log_q, a.log_q)


def test_hand_checked_small_k():
    """K = 4, seed 0: s = 0.274…, int(2·s·4) = 2 indices are swapped; noise ~ 1e-12."""
    p = np.array([0.4, 0.3, 0.2, 0.1])
    rng = np.random.RandomState(0)
    s = rng.uniform(0, 0.5)
    assert int(2 * s * 4) == 2
    i, j = rng.choice(4, 2, replace=False)
    expected = p.copy()
    expected[i], expected[j] = p[j], p[i]
    draws = ShuffleNoiseSampler(sd_ub=2e-12).sample(np.log(p), 1, seed=0)
    np.testing.assert_allclose(draws.q[0], expected, atol=1e-9)
    assert draws.params["shuffle"][0] == s
    assert not np.allclose(expected, p)  # the swap did move something


def test_shuffle_is_a_pairwise_swap_of_the_right_size(log_p):
    p = np.exp(log_p)
    draws = ShuffleNoiseSampler(sd_ub=2e-12).sample(log_p, 40, seed=5)
    K = len(p)
    for q, s in zip(draws.q, draws.params["shuffle"]):
        # each q value is some p value: find the permutation
        perm = np.array([int(np.argmin(np.abs(p - v))) for v in q])
        np.testing.assert_allclose(q, p[perm], atol=1e-9)
        moved = np.flatnonzero(perm != np.arange(K))
        n_idx = int(2 * s * K)
        assert len(moved) == n_idx - n_idx % 2
        assert np.array_equal(perm[perm], np.arange(K))  # an involution: pairs swapped


@pytest.mark.parametrize(
    "sampler", [ShuffleNoiseSampler(), DirichletSampler(), DirichletSampler(5.0)]
)
def test_q_is_a_distribution(log_p, sampler):
    d = sampler.sample(log_p, 50, seed=1)
    assert d.log_q.shape == (50, 30) and len(d) == 50
    assert np.isfinite(d.log_q).all()
    assert (d.q >= 0).all()
    np.testing.assert_allclose(d.q.sum(axis=1), 1.0, atol=1e-12)


def test_accepts_a_joint_prior_and_shapes():
    prior = JointPrior.fit(np.array([[0, 0], [1, 2], [1, 1]]), n_classes=(2, 3))
    a = sample_q(prior, 4, seed=0)
    b = sample_q(prior.log_prob + 5.0, 4, seed=0)  # unnormalised log prior: same q
    np.testing.assert_allclose(a.q, b.q, atol=1e-12)
    assert a.log_q.shape == (4, 6)


def test_generator_seed_runs_the_same_protocol(log_p):
    d1 = ShuffleNoiseSampler().sample(log_p, 5, seed=np.random.default_rng(0))
    d2 = ShuffleNoiseSampler().sample(log_p, 5, seed=np.random.default_rng(0))
    np.testing.assert_array_equal(d1.log_q, d2.log_q)
    assert (d1.params["shuffle"] <= 0.5).all()


def test_dirichlet_moments():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    c = 40.0
    q = DirichletSampler(concentration=c).sample(np.log(p), 20000, seed=0).q
    np.testing.assert_allclose(q.mean(axis=0), p, atol=0.004)
    np.testing.assert_allclose(q.var(axis=0), p * (1 - p) / (c + 1), rtol=0.06)


def test_dirichlet_range_and_tiny_shapes_stay_finite():
    p = np.r_[0.999, np.full(9, 1e-4 / 9)]
    d = DirichletSampler(concentration=(0.01, 100.0)).sample(np.log(p / p.sum()), 200, seed=2)
    c = d.params["concentration"]
    assert c.min() >= 0.01 and c.max() <= 100.0 and c.std() > 0
    assert np.isfinite(d.log_q).all()
    again = DirichletSampler(concentration=(0.01, 100.0)).sample(np.log(p / p.sum()), 200, seed=2)
    np.testing.assert_array_equal(d.log_q, again.log_q)


def test_make_sampler_and_bad_input(log_p):
    assert isinstance(make_sampler("dirichlet", concentration=3.0), DirichletSampler)
    with pytest.raises(ValueError, match="protocol"):
        make_sampler("uniform")
    with pytest.raises(ValueError, match="shuffle_ub"):
        ShuffleNoiseSampler(shuffle_ub=0.7)
    with pytest.raises(ValueError, match="sd_ub"):
        ShuffleNoiseSampler(sd_ub=0.0)
    with pytest.raises(ValueError, match="concentration"):
        DirichletSampler(concentration=(5.0, 1.0))
    with pytest.raises(ValueError, match="n "):
        ShuffleNoiseSampler().sample(log_p, 0)
    with pytest.raises(ValueError, match="seed"):
        ShuffleNoiseSampler().sample(log_p, 2, seed=-1)
    with pytest.raises(ValueError, match="NaN"):
        ShuffleNoiseSampler().sample(np.array([0.0, np.nan, 1.0]), 2)
    with pytest.raises(ValueError, match="p = 0"):
        DirichletSampler().sample(np.array([0.0, -np.inf, 1.0]), 2)
