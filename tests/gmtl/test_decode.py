import itertools

import numpy as np
import pytest
import torch

from causalmtl.gmtl import JointPrior, decode, gmtl_decode, independent_argmax


def random_log_probs(rng, n, n_classes):
    out = []
    for c in n_classes:
        logits = rng.normal(size=(n, c)) * 2
        out.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    return out


def random_prior(rng, n_classes, conc=0.5):
    p = rng.dirichlet(np.full(int(np.prod(n_classes)), conc)).reshape(n_classes)
    p = (p + 1e-3) / (p + 1e-3).sum()
    return JointPrior.from_probs(p)


def brute_force(log_probs, prior, alpha=None, q=None):
    n = log_probs[0].shape[0]
    n_classes = prior.n_classes
    best = np.zeros((n, len(n_classes)), dtype=np.int64)
    for i in range(n):
        best_score = -np.inf
        for y in itertools.product(*[range(c) for c in n_classes]):  # C-order
            s = sum(lp[i, yt] for lp, yt in zip(log_probs, y))
            if q is None:
                s -= alpha * np.log(prior.probs[y])
            else:
                s += -np.log(prior.probs[y]) + np.log(q[y])
            if s > best_score:
                best_score, best[i] = s, y
    return best


CASES = [(2, 2), (3, 5), (2, 3, 4), (4, 2, 3), (2, 2, 2, 3), (3, 2, 2, 2)]
ALPHAS = [0.0, 0.1, 0.3, 0.5, 0.8, 1.0]


@pytest.mark.parametrize("n_classes", CASES)
def test_equals_brute_force_numpy_and_torch(n_classes):
    rng = np.random.default_rng(len(n_classes) * 10 + n_classes[0])
    lp = random_log_probs(rng, 40, n_classes)
    prior = random_prior(rng, n_classes)
    got = gmtl_decode(lp, prior, alpha=ALPHAS).labels
    got_t = gmtl_decode([torch.as_tensor(x) for x in lp], prior, alpha=ALPHAS).labels
    assert isinstance(got_t, torch.Tensor) and got.shape == (len(ALPHAS), 40, len(n_classes))
    for a_i, a in enumerate(ALPHAS):
        expected = brute_force(lp, prior, alpha=a)
        np.testing.assert_array_equal(got[a_i], expected)
        np.testing.assert_array_equal(got_t[a_i].numpy(), expected)
        np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=a).labels, expected)


@pytest.mark.parametrize("n_classes", [(3, 4), (2, 3, 2)])
def test_known_q_equals_brute_force_and_score_formula(n_classes):
    rng = np.random.default_rng(7)
    lp = random_log_probs(rng, 30, n_classes)
    prior = random_prior(rng, n_classes)
    q = random_prior(rng, n_classes).probs
    res = gmtl_decode(lp, prior, q=q, scores=True)
    labels, scores = res.labels, res.scores
    np.testing.assert_array_equal(labels, brute_force(lp, prior, q=q))
    for y in itertools.product(*[range(c) for c in n_classes]):
        # same association as the implementation: Σ_t log p(y_t|x) + (−log p(y) + log q(y))
        expected = sum(x[:, yt] for x, yt in zip(lp, y)) + (-np.log(prior.probs[y]) + np.log(q[y]))
        np.testing.assert_array_equal(scores[(slice(None), *y)], expected)


def test_scores_equal_objective_for_alpha_grid():
    rng = np.random.default_rng(1)
    lp = random_log_probs(rng, 5, (2, 3))
    prior = random_prior(rng, (2, 3))
    scores = gmtl_decode(lp, prior, alpha=[0.0, 0.5, 1.0], scores=True).scores
    for a_i, a in enumerate([0.0, 0.5, 1.0]):
        expected = lp[0][:, :, None] + lp[1][:, None, :] - a * np.log(prior.probs)[None]
        np.testing.assert_allclose(scores[a_i], expected, rtol=0, atol=1e-12)


def test_alpha_zero_is_independent_argmax_exactly():
    rng = np.random.default_rng(2)
    lp = random_log_probs(rng, 500, (4, 3, 5))
    # exact ties between classes: lowest index wins in both
    lp[0][:10, 1] = lp[0][:10, 2] = lp[0][:10].max(axis=1)
    prior = random_prior(rng, (4, 3, 5))
    np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=0.0, normalized=False).labels, independent_argmax(lp))


def test_uniform_prior_gives_same_result_for_every_alpha():
    rng = np.random.default_rng(3)
    lp = random_log_probs(rng, 300, (3, 7))
    out = gmtl_decode(lp, JointPrior.uniform((3, 7)), alpha=np.linspace(0, 1, 11)).labels
    for a_i in range(11):
        np.testing.assert_array_equal(out[a_i], out[0])


def test_joint_input_matches_factorised_and_brute_force():
    rng = np.random.default_rng(4)
    lp = random_log_probs(rng, 25, (3, 4))
    joint = lp[0][:, :, None] + lp[1][:, None, :]
    prior = random_prior(rng, (3, 4))
    for a in ALPHAS:
        np.testing.assert_array_equal(gmtl_decode(joint, prior, alpha=a).labels, brute_force(lp, prior, alpha=a))
    # a genuinely joint model (not a product of marginals)
    j = rng.normal(size=(25, 3, 4))
    j = j - np.logaddexp.reduce(j.reshape(25, -1), axis=1)[:, None, None]
    got = gmtl_decode(j, prior, alpha=0.7).labels
    flat = (j.reshape(25, -1) - 0.7 * np.log(prior.probs).reshape(-1)).argmax(axis=1)
    np.testing.assert_array_equal(got, np.stack(np.unravel_index(flat, (3, 4)), axis=1))


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(5)
    lp = random_log_probs(rng, 1000, (10, 8))
    prior = random_prior(rng, (10, 8))
    big = gmtl_decode(lp, prior, alpha=[0.2, 0.9]).labels
    tiny = gmtl_decode(lp, prior, alpha=[0.2, 0.9], memory_mb=0.01).labels  # chunks of ~4 rows
    np.testing.assert_array_equal(big, tiny)


def test_gmtl_alpha_one_on_gaussian_mixture_equals_class_conditional_argmax():
    """§4 example: decoding the exact joint posterior at α=1 gives argmax log p(x|y,y') (Eq. 5)."""
    rng = np.random.default_rng(6)
    p = np.array([[0.45, 0.05], [0.05, 0.45]])  # Cov[Y, Y'] = 0.2 with θ = θ' = 0.5
    means = np.array([[0, 1], [2, 3]], dtype=float)  # z = 2y + y'
    var = np.array([[0.4, 0.4], [0.6, 0.6]])
    flat = rng.choice(4, size=2000, p=p.reshape(-1))
    y = np.stack(np.unravel_index(flat, (2, 2)), axis=1)
    x = rng.normal(means[y[:, 0], y[:, 1]], np.sqrt(var[y[:, 0], y[:, 1]]))
    log_lik = -0.5 * np.log(2 * np.pi * var)[None] - (x[:, None, None] - means[None]) ** 2 / (2 * var[None])
    log_joint = log_lik + np.log(p)[None]
    log_post = log_joint - np.logaddexp.reduce(log_joint.reshape(-1, 4), axis=1)[:, None, None]
    got = gmtl_decode(log_post, JointPrior.from_probs(p), alpha=1.0).labels
    expected = np.stack(np.unravel_index(log_lik.reshape(-1, 4).argmax(axis=1), (2, 2)), axis=1)
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 0] != gmtl_decode(log_post, JointPrior.from_probs(p), alpha=0.0).labels[:, 0]).any()


def test_zero_prior_cells_are_refused_unless_alpha_zero():
    prior = JointPrior.fit(np.array([[0, 0], [1, 1]]), (2, 2), pseudocount=0.0)
    lp = [np.log([[0.5, 0.5]]), np.log([[0.5, 0.5]])]
    with pytest.raises(ValueError, match="2 joint cells with probability 0"):
        gmtl_decode(lp, prior, alpha=0.5)
    with pytest.raises(ValueError, match="pseudocount > 0"):
        gmtl_decode(lp, prior, q=np.full((2, 2), 0.25))
    np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=0.0).labels, [[0, 0]])


def test_q_with_zero_cells_excludes_them():
    prior = JointPrior.from_probs(np.full((2, 2), 0.25))
    lp = [np.log([[0.9, 0.1]]), np.log([[0.9, 0.1]])]
    q = np.array([[0.0, 0.5], [0.5, 0.0]])
    assert gmtl_decode(lp, prior, q=q).labels.tolist() == [[0, 1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_stay_on_device():  # runs only on a GPU machine; not counted on CPU CI
    rng = np.random.default_rng(8)
    lp = random_log_probs(rng, 20, (3, 4))
    prior = random_prior(rng, (3, 4))
    out = gmtl_decode([torch.as_tensor(x, device="cuda") for x in lp], prior, alpha=[0.0, 1.0]).labels
    assert out.device.type == "cuda"
    np.testing.assert_array_equal(out.cpu().numpy(), gmtl_decode(lp, prior, alpha=[0.0, 1.0]).labels)


GOOD = [np.log(np.full((2, 2), 0.5)), np.log(np.full((2, 3), 1 / 3))]
PRIOR = JointPrior.from_probs(np.full((2, 3), 1 / 6))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(log_probs=[GOOD[0]]), "log_probs has 1 tasks but the prior has 2"),
        (dict(log_probs=[GOOD[0], GOOD[0]]), r"log_probs\[1\] must have shape \(N, 3\)"),
        (dict(log_probs=[GOOD[0], GOOD[1][:1]]), r"log_probs\[1\] has 1 rows"),
        (dict(log_probs=[np.where([[True, False], [False, False]], np.nan, GOOD[0]), GOOD[1]]), "NaN at index"),
        (dict(log_probs=[np.where([[True, False], [False, False]], np.inf, GOOD[0]), GOOD[1]]), r"\+inf"),
        (dict(log_probs=[GOOD[0] + 1.0, GOOD[1]]), "check failed: log p <= 0"),
        (dict(log_probs=[GOOD[0] - 1.0, GOOD[1]]), "check failed: |logsumexp|"),
        (dict(log_probs=[GOOD[0][:0], GOOD[1][:0]]), "empty"),
        (dict(alpha=1.5), r"alpha must lie in \[0, 1\], got 1.5"),
        (dict(alpha=-0.1), r"alpha must lie in \[0, 1\]"),
        (dict(target_prior=np.full((2, 2), 0.25)), "target_prior has n_classes"),
        (dict(target_prior=np.array([[0.5, 0.6, 0], [0, 0, -0.1]])), "negative entry"),
        (dict(target_prior=np.full((2, 3), 0.2)), "sum to 1"),
        (dict(alpha=0.5, target_prior=np.full((2, 3), 1 / 6)), "either alpha or target_prior"),
        (dict(log_probs=np.zeros((2, 2, 2))), "joint log_probs array must have shape"),
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the deprecated decode's messages
def test_bad_input(kwargs, match):
    args = dict(log_probs=GOOD, prior=PRIOR)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        decode(**args)


def test_logits_allowed_when_not_normalized():
    rng = np.random.default_rng(9)
    lp = random_log_probs(rng, 50, (3, 3))
    prior = random_prior(rng, (3, 3))
    logits = [x + rng.normal(size=(50, 1)) * 3 + 1 for x in lp]
    np.testing.assert_array_equal(
        gmtl_decode(logits, prior, alpha=0.6, normalized=False).labels, gmtl_decode(lp, prior, alpha=0.6).labels
    )


def test_one_task_table_matches_brute_force():
    """T = 1 (a single-output GMTLClassifier): argmax_y log p(y|x) − α log p(y), numpy and torch."""
    from causalmtl.gmtl import gmtl_decode

    prior = JointPrior.from_probs([0.7, 0.2, 0.1])
    lp = [np.log(np.random.default_rng(0).dirichlet(np.ones(3), size=50))]
    alphas = np.array([0.0, 0.5, 1.0])
    res = gmtl_decode(lp, prior, alpha=list(alphas), scores=True)
    objective = lp[0][None] - alphas[:, None, None] * np.log(prior.probs)[None, None]
    np.testing.assert_array_equal(res.labels[..., 0], objective.argmax(axis=2))
    np.testing.assert_allclose(res.scores, objective)
    res_t = gmtl_decode([torch.as_tensor(lp[0])], prior, alpha=list(alphas))
    np.testing.assert_array_equal(res_t.labels.numpy(), res.labels)
