"""Tree decoding: max-product / sum-product against brute force, split α, modes, choice."""

import itertools
import logging

import numpy as np
import pytest
import torch

from causalmtl.gmtl import JointPrior, TreePrior, decode, decode_structured, fit_prior, gmtl_decode


def random_log_probs(rng, n, n_classes, scale=2.0):
    out = []
    for c in n_classes:
        logits = rng.normal(size=(n, c)) * scale
        out.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    return out


def brute_objective(log_probs, prior, am, ad, q=None):
    """F(y) for every y by enumeration (S1)/(F_q), with log p(y) from (T1) via log_pmf."""
    n_classes = prior.n_classes
    ys = np.array(list(itertools.product(*[range(c) for c in n_classes])))  # C-order
    logp = prior.log_pmf(ys)
    marg = sum(np.log(prior.marginal(t))[ys[:, t]] for t in range(len(n_classes)))
    base = sum(lp[:, ys[:, t]] for t, lp in enumerate(log_probs))  # (N, K)
    if q is None:
        direction = -ad * logp - (am - ad) * marg
    else:
        with np.errstate(divide="ignore"):
            direction = -logp + q.log_pmf(ys)
    return base + direction[None], ys


def brute_decode(log_probs, prior, am, ad, q=None):
    f, ys = brute_objective(log_probs, prior, am, ad, q)
    return ys[f.argmax(axis=1)], f


def brute_marginals(log_probs, prior, am, ad, q=None):
    f, ys = brute_objective(log_probs, prior, am, ad, q)
    r = np.exp(f - np.logaddexp.reduce(f, axis=1, keepdims=True))
    out = []
    for t, c in enumerate(prior.n_classes):
        out.append(np.stack([r[:, ys[:, t] == k].sum(axis=1) for k in range(c)], axis=1))
    return out


def mixed_classes(T, rng):
    budget = 20000  # keep brute force cheap
    classes = [2] * T
    for t in rng.permutation(T):
        if np.prod(classes) * 3 // 2 <= budget:
            classes[t] = int(rng.choice([2, 3, 4]))
            while np.prod(classes) > budget:
                classes[t] -= 1
    return tuple(classes)


ALPHAS = [(0.0, 0.0), (0.3, 0.3), (1.0, 1.0), (0.0, 1.0), (1.0, 0.2), (0.5, 0.8)]


@pytest.mark.parametrize("T", range(3, 11))
def test_max_product_equals_brute_force(T):
    rng = np.random.default_rng(T)
    n_classes = mixed_classes(T, rng)
    prior = TreePrior.random(n_classes, seed=T, concentration=0.5)
    lp = random_log_probs(rng, 12, n_classes)
    am = np.array([a for a, _ in ALPHAS])
    ad = np.array([d for _, d in ALPHAS])
    got = gmtl_decode(lp, prior, alpha_marginal=am, alpha_dependence=ad).labels
    assert got.shape == (len(ALPHAS), 12, T)
    for i, (a_m, a_d) in enumerate(ALPHAS):
        want, f = brute_decode(lp, prior, a_m, a_d)
        np.testing.assert_array_equal(got[i], want)
        # the objective at the decoded labels is the maximum (robust statement of optimality)
        flat = np.ravel_multi_index(got[i].T, n_classes)
        np.testing.assert_allclose(f[np.arange(12), flat], f.max(axis=1), atol=1e-9)


@pytest.mark.parametrize("T", [3, 6, 9])
def test_max_product_with_q_equals_brute_force(T):
    rng = np.random.default_rng(100 + T)
    n_classes = mixed_classes(T, rng)
    prior = TreePrior.random(n_classes, seed=T, concentration=0.5)
    q = TreePrior.random(n_classes, edges=prior.edges, seed=T + 1, concentration=0.5)
    lp = random_log_probs(rng, 15, n_classes)
    got = gmtl_decode(lp, prior, q=q).labels
    want, _ = brute_decode(lp, prior, 1.0, 1.0, q=q)
    np.testing.assert_array_equal(got, want)
    table = gmtl_decode(lp, prior.to_joint(), q=q.to_joint()).labels
    np.testing.assert_array_equal(got, table)


def test_q_with_zero_cells_never_predicted():
    n_classes = (2, 2, 3)
    prior = TreePrior.random(n_classes, edges=[(0, 1), (1, 2)], seed=1)
    pair01 = np.array([[0.5, 0.0], [0.2, 0.3]])
    pair12 = np.array([[0.3, 0.2, 0.2], [0.0, 0.0, 0.3]])
    q = TreePrior.from_marginals(n_classes, [(0, 1), (1, 2)], [pair01, pair12])
    lp = random_log_probs(np.random.default_rng(0), 200, n_classes, scale=4.0)
    got = gmtl_decode(lp, prior, q=q).labels
    assert np.all(q.probs[tuple(got.T)] > 0)
    want, _ = brute_decode(lp, prior, 1.0, 1.0, q=q)
    np.testing.assert_array_equal(got, want)
    marg = gmtl_decode(lp, prior, q=q, mode="marginal", marginals=True).marginals
    for m, w in zip(marg, brute_marginals(lp, prior, 1.0, 1.0, q=q)):
        np.testing.assert_allclose(np.exp(m), w, atol=1e-10)


@pytest.mark.parametrize("T", [3, 5, 8])
def test_sum_product_marginals_equal_brute_force(T):
    rng = np.random.default_rng(200 + T)
    n_classes = mixed_classes(T, rng)
    prior = TreePrior.random(n_classes, seed=T, concentration=0.4)
    lp = random_log_probs(rng, 10, n_classes)
    for a_m, a_d in [(1.0, 1.0), (0.0, 0.7), (0.4, 0.0)]:
        res = gmtl_decode(lp, prior, alpha_marginal=a_m, alpha_dependence=a_d, mode="marginal", marginals=True)
        labels, marg = res.labels, res.marginals
        want = brute_marginals(lp, prior, a_m, a_d)
        for m, w in zip(marg, want):
            np.testing.assert_allclose(np.exp(m), w, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(labels, np.stack([w.argmax(axis=1) for w in want], axis=1))


def test_forest_decoding_equals_brute_force():
    rng = np.random.default_rng(3)
    n_classes = (2, 3, 2, 2, 3, 2)
    prior = TreePrior.random(n_classes, edges=[(0, 1), (2, 3), (3, 4)], seed=2)
    lp = random_log_probs(rng, 20, n_classes)
    want, _ = brute_decode(lp, prior, 0.6, 0.6)
    np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=0.6).labels, want)
    marg = gmtl_decode(lp, prior, alpha=0.6, marginals=True).marginals
    for m, w in zip(marg, brute_marginals(lp, prior, 0.6, 0.6)):
        np.testing.assert_allclose(np.exp(m), w, atol=1e-10)


def test_split_alpha_equal_is_single_alpha_exactly():
    rng = np.random.default_rng(4)
    n_classes = (2, 3, 2, 2, 2)
    tree = TreePrior.random(n_classes, seed=4, concentration=0.3)
    joint = JointPrior.from_probs(rng.dirichlet(np.full(48, 0.3)).reshape(n_classes) * 0.99 + 0.01 / 48)
    lp = random_log_probs(rng, 300, n_classes)
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    for prior in (tree, joint):
        single = gmtl_decode(lp, prior, alpha=grid).labels
        split = gmtl_decode(lp, prior, alpha_marginal=grid, alpha_dependence=grid).labels
        np.testing.assert_array_equal(single, split)
        m1 = gmtl_decode(lp, prior, alpha=grid, mode="marginal").labels
        m2 = gmtl_decode(lp, prior, alpha_marginal=grid, alpha_dependence=grid, mode="marginal").labels
        np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(gmtl_decode(lp, joint, alpha=grid).labels, gmtl_decode(lp, joint, alpha_marginal=grid, alpha_dependence=grid).labels)


def test_split_alpha_table_and_tree_agree_and_differ_from_single():
    rng = np.random.default_rng(5)
    n_classes = (2, 2, 3, 2, 2, 2)
    prior = TreePrior.random(n_classes, seed=5, concentration=0.3)
    lp = random_log_probs(rng, 400, n_classes)
    kw = dict(alpha_marginal=[0.0, 1.0, 0.2], alpha_dependence=[1.0, 0.0, 0.9])
    tree_res = gmtl_decode(lp, prior, kernel="tree", marginals=True, **kw)
    table_res = gmtl_decode(lp, prior, kernel="table", marginals=True, **kw)
    by_tree, m_tree = tree_res.labels, tree_res.marginals
    by_table, m_table = table_res.labels, table_res.marginals
    np.testing.assert_array_equal(by_tree, by_table)
    for a, b in zip(m_tree, m_table):
        np.testing.assert_allclose(a, b, atol=1e-10)
    # the split genuinely changes the decision compared with the single α = α_d
    single = gmtl_decode(lp, prior, alpha=1.0).labels
    assert (by_tree[0] != single).any()


def test_zero_alphas_is_dmtl():
    rng = np.random.default_rng(6)
    prior = TreePrior.random((3, 2, 2, 4), seed=0)
    lp = random_log_probs(rng, 100, prior.n_classes)
    dmtl = np.stack([x.argmax(axis=1) for x in lp], axis=1)
    np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=0.0).labels, dmtl)
    np.testing.assert_array_equal(gmtl_decode(lp, prior, alpha=0.0, mode="marginal").labels, dmtl)


def test_torch_inputs_and_chunking():
    rng = np.random.default_rng(7)
    prior = TreePrior.random((2, 3, 2, 2, 2, 2, 2), seed=7)
    lp = random_log_probs(rng, 300, prior.n_classes)
    ref = gmtl_decode(lp, prior, alpha=[0.2, 0.9], mode="marginal", marginals=True).labels
    res = gmtl_decode([torch.as_tensor(x) for x in lp], prior, alpha=[0.2, 0.9], mode="marginal", marginals=True)
    got, got_m = res.labels, res.marginals
    assert isinstance(got, torch.Tensor) and isinstance(got_m[0], torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), ref)
    small = gmtl_decode(lp, prior, alpha=[0.2, 0.9], memory_mb=0.02).labels
    np.testing.assert_array_equal(small, gmtl_decode(lp, prior, alpha=[0.2, 0.9]).labels)
    small_m = gmtl_decode(lp, prior, alpha=[0.2, 0.9], mode="marginal", kernel="table", memory_mb=0.05).labels
    np.testing.assert_array_equal(small_m, ref)


def test_joint_array_input_on_the_table():
    rng = np.random.default_rng(8)
    prior = TreePrior.random((2, 3, 2), seed=8)
    lp = random_log_probs(rng, 50, prior.n_classes)
    joint_scores = lp[0][:, :, None, None] + lp[1][:, None, :, None] + lp[2][:, None, None, :]
    a = gmtl_decode(joint_scores, prior, alpha=0.7, kernel="table", mode="marginal").labels
    b = gmtl_decode(lp, prior, alpha=0.7, mode="marginal").labels
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="tree decoding needs per-task scores"):
        gmtl_decode(joint_scores, prior, alpha=0.7, kernel="tree")
    res = gmtl_decode(joint_scores, prior, alpha=0.7, mode="marginal")
    auto, info = res.labels, res.info
    assert info.method == "table"
    np.testing.assert_array_equal(auto, b)


def test_info_reports_the_method(caplog):
    rng = np.random.default_rng(9)
    tree = TreePrior.random((2,) * 30, seed=1)
    lp = random_log_probs(rng, 5, tree.n_classes)
    with caplog.at_level(logging.INFO, logger="causalmtl.gmtl.decoding.decode"):
        info = gmtl_decode(lp, tree, alpha=0.5).info
    assert info.method == "tree" and info.prior == "TreePrior" and info.n_joint == 2**30
    assert info.backend == "numpy"
    assert "tree decoding" in caplog.text
    joint = JointPrior.uniform((2, 2))
    info = gmtl_decode(random_log_probs(rng, 5, (2, 2)), joint).info
    assert info.method == "table"
    info = gmtl_decode(random_log_probs(rng, 5, (2, 2)), joint, kernel="tree").info
    assert info.method == "tree" and "projected" in info.reason
    lpt = [torch.as_tensor(x) for x in random_log_probs(rng, 5, (2, 2))]
    info = gmtl_decode(lpt, joint, backend="torch").info
    assert info.backend == "torch" and info.method == "table"


def test_fit_prior_chooses_by_size():
    rng = np.random.default_rng(10)
    small = fit_prior(rng.integers(0, 2, size=(50, 4)), (2,) * 4)
    assert isinstance(small, JointPrior)
    big = fit_prior(rng.integers(0, 2, size=(50, 20)), (2,) * 20)
    assert isinstance(big, TreePrior)
    forced = fit_prior(rng.integers(0, 2, size=(50, 4)), (2,) * 4, structure="tree", threshold=0.0)
    assert isinstance(forced, TreePrior)
    with pytest.raises(ValueError, match="structure must be 'auto', 'full' or 'tree', got 'table'"):
        fit_prior(rng.integers(0, 2, size=(5, 2)), (2, 2), structure="table")


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pins the deprecated form
def test_bad_decode_arguments():
    # the deprecated decode_structured's messages name its own parameters (target_prior, method)
    rng = np.random.default_rng(11)
    prior = TreePrior.random((2, 2, 2), edges=[(0, 1), (1, 2)], seed=0)
    lp = random_log_probs(rng, 4, prior.n_classes)
    other = TreePrior.random((2, 2, 2), edges=[(0, 1), (0, 2)], seed=0)
    with pytest.raises(ValueError, match=r"target_prior is a tree on different edges"):
        decode_structured(lp, prior, target_prior=other)
    with pytest.raises(ValueError, match="target_prior must be a TreePrior on the prior's tree"):
        decode_structured(lp, prior, target_prior=other.to_joint())
    with pytest.raises(ValueError, match="not both"):
        decode_structured(lp, prior, alpha_dependence=0.5, target_prior=prior)
    with pytest.raises(ValueError, match="mode must be 'joint' or 'marginal', got 'map'"):
        decode_structured(lp, prior, mode="map")
    with pytest.raises(ValueError, match="method must be 'auto', 'table' or 'tree', got 'full'"):
        decode_structured(lp, prior, method="full")
    with pytest.raises(ValueError, match=r"alpha_marginal must lie in \[0, 1\], got 1.5"):
        decode_structured(lp, prior, alpha_marginal=1.5)
    with pytest.raises(ValueError, match="one common length"):
        decode_structured(lp, prior, alpha_marginal=[0, 1], alpha_dependence=[0, 0.5, 1])
    with pytest.raises(ValueError, match=r"log_probs\[1\] must have shape \(N, 2\)"):
        decode_structured([lp[0], lp[1][:, :1], lp[2]], prior)
    with pytest.raises(ValueError, match=r"log_probs\[0\] is not a normalised log-probability at row 0"):
        decode_structured([lp[0] + 1.0, lp[1], lp[2]], prior)
    big = TreePrior.random((2,) * 30, seed=0)
    with pytest.raises(ValueError, match="more than max_size"):
        decode_structured(random_log_probs(rng, 2, big.n_classes), big, method="table")
    zero = TreePrior.from_marginals((2, 2), [(0, 1)], [[[0.5, 0.0], [0.0, 0.5]]])
    with pytest.raises(ValueError, match="probability 0"):
        decode_structured(lp[:2], zero, alpha=0.5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pins the deprecated form
def test_needs_structured_routing_rules():
    from causalmtl.gmtl.decoding.structured import needs_structured

    tree = TreePrior.random((2, 2), seed=0)
    joint = JointPrior.uniform((2, 2))
    assert needs_structured(tree) and not needs_structured(joint)
    assert needs_structured(joint, mode="marginal") and needs_structured(joint, alpha_dependence=0.5)
    assert needs_structured(joint, method="tree") and needs_structured(joint, return_info=True)
    assert not needs_structured(tree, return_scores=True)  # the flattened table via decode
    with pytest.raises(ValueError, match="return_scores is only available"):
        needs_structured(joint, return_scores=True, mode="marginal")
    # a small TreePrior is already a drop-in prior for decode (through its flattened table)
    lp = random_log_probs(np.random.default_rng(0), 20, (2, 2))
    np.testing.assert_array_equal(decode(lp, tree, alpha=0.7), decode_structured(lp, tree, alpha=0.7))


def test_numpy_and_torch_backends_agree():
    rng = np.random.default_rng(13)
    prior = TreePrior.random((2, 3, 2, 4, 2, 2), seed=13, concentration=0.4)
    q = TreePrior.random(prior.n_classes, edges=prior.edges, seed=14)
    lp = random_log_probs(rng, 200, prior.n_classes)
    lpt = [torch.as_tensor(x) for x in lp]
    for kw in (dict(alpha=[0.0, 0.4, 1.0]), dict(alpha_marginal=[0.0, 1.0], alpha_dependence=[1.0, 0.3]),
               dict(q=q)):
        for mode, method in itertools.product(("joint", "marginal"), ("tree", "table")):
            ra = gmtl_decode(lp, prior, mode=mode, kernel=method, marginals=True, backend="numpy", **kw)
            rb = gmtl_decode(lpt, prior, mode=mode, kernel=method, marginals=True, backend="torch", **kw)
            a, ma, b, mb = ra.labels, ra.marginals, rb.labels, rb.marginals
            assert isinstance(b, torch.Tensor)
            np.testing.assert_array_equal(a, b.numpy())
            for x, y in zip(ma, mb):
                np.testing.assert_allclose(x, y.numpy(), atol=1e-10)
    c = gmtl_decode(lpt, prior, alpha=0.5).labels  # CPU tensors take the numpy kernels, return tensors
    assert isinstance(c, torch.Tensor)
    np.testing.assert_array_equal(c.numpy(), gmtl_decode(lp, prior, alpha=0.5, backend="torch").labels)
    with pytest.raises(ValueError, match="backend must be 'auto', 'numpy' or 'torch', got 'jax'"):
        gmtl_decode(lp, prior, backend="jax")
