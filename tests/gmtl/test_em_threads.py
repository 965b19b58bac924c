"""Small EM problems run with one torch thread (issue 15) and leave the caller's setting alone."""

import numpy as np
import pytest
import torch

from causalmtl.gmtl import JointPrior
from causalmtl.gmtl.unknown_q.em import SMALL_EM_CELLS, estimate_prior_em


def _problem(n=300, K=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=n)
    log_lik = np.log(0.2 + np.eye(K)[y] + 0.3 * rng.random((n, K))).reshape(n, 2, K // 2)
    return log_lik, JointPrior.from_probs(rng.dirichlet(np.ones(K)).reshape(2, K // 2))


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_small_problem_uses_one_thread_and_restores_the_setting(two_threads, monkeypatch):
    import causalmtl.gmtl.unknown_q.em as em

    seen = []
    real = em.normalised_likelihood

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(em, "normalised_likelihood", spy)
    log_lik, prior = _problem()
    assert log_lik.size < SMALL_EM_CELLS
    res = em.estimate_prior_em(log_lik, prior)
    assert seen == [1]                                       # inside: one thread
    assert torch.get_num_threads() == 2                      # after: the caller's two
    ref = em.estimate_prior_em.__wrapped__(log_lik, prior)   # the same EM without the guard
    assert seen == [1, 2]
    np.testing.assert_allclose(res.q, ref.q, rtol=0, atol=1e-12)
    assert res.n_iter == ref.n_iter


def test_thread_count_is_restored_after_an_error(two_threads):
    log_lik, prior = _problem()
    with pytest.raises(TypeError, match="tol must be"):
        estimate_prior_em(log_lik, prior, tol="x")
    assert torch.get_num_threads() == 2


def test_large_problem_keeps_the_callers_threads(two_threads, monkeypatch):
    import causalmtl.gmtl.unknown_q.em as em

    monkeypatch.setattr(em, "SMALL_EM_CELLS", 16)            # make the test problem "large"
    seen = []
    real = em.normalised_likelihood

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(em, "normalised_likelihood", spy)
    log_lik, prior = _problem()
    em.estimate_prior_em(log_lik, prior)
    assert seen == [2]
