"""gmtl_decode and the Prior protocol: one suite over both priors, both kernels, both backends.

Every case is pinned to brute force: the objective (Eq. 6 split as (S1), or F_q of §3.1) is
enumerated over the whole product space with ``log p(y)`` from the prior's own ``log_pmf``
(the table lookup for a JointPrior, (T1) for a TreePrior), and its argmax (lowest C-order index
on ties) and the marginals of ``r ∝ exp F`` are compared with what the decoder returns.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import pytest
import torch

import causalmtl as cm
from causalmtl.gmtl import Decoded, DecodeInfo, JointPrior, Prior, TreePrior, gmtl_decode
from causalmtl.gmtl.decoding.structured import decode_structured

N_CLASSES = (2, 3, 2, 3)
EDGES = ((0, 1), (1, 2), (1, 3))
GRID = [(0.0, 0.0), (0.4, 0.4), (1.0, 1.0), (0.0, 0.8), (0.9, 0.2)]


def random_log_probs(rng, n, n_classes, scale=2.0):
    out = []
    for c in n_classes:
        x = rng.normal(size=(n, c)) * scale
        out.append(x - np.logaddexp.reduce(x, axis=1, keepdims=True))
    return out


def make_prior(kind: str, seed: int):
    tree = TreePrior.random(N_CLASSES, edges=EDGES, seed=seed, concentration=0.6)
    if kind == "tree":
        return tree
    rng = np.random.default_rng(seed)
    return JointPrior.from_probs(rng.dirichlet(np.full(int(np.prod(N_CLASSES)), 0.8)).reshape(N_CLASSES))


def brute_objective(lp, prior, am, ad, q=None):
    ys = np.array(list(itertools.product(*[range(c) for c in prior.n_classes])))  # C-order
    logp = prior.log_pmf(ys)
    marg = sum(np.log(prior.marginal(t))[ys[:, t]] for t in range(prior.n_tasks))
    base = sum(x[:, ys[:, t]] for t, x in enumerate(lp))
    if q is None:
        term = -am * marg - ad * (logp - marg)
    else:
        with np.errstate(divide="ignore"):
            term = -logp + q.log_pmf(ys)
    return base + term[None], ys


def brute_labels_and_marginals(lp, prior, am, ad, q=None):
    f, ys = brute_objective(lp, prior, am, ad, q)
    r = np.exp(f - np.logaddexp.reduce(f, axis=1, keepdims=True))
    margs = [np.stack([r[:, ys[:, t] == k].sum(axis=1) for k in range(c)], axis=1)
             for t, c in enumerate(prior.n_classes)]  # fmt: skip
    return ys[f.argmax(axis=1)], margs, f


def as_backend(lp, backend):
    return lp if backend == "numpy" else [torch.as_tensor(x) for x in lp]


def to_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


PRIORS = ["joint", "tree"]
KERNELS = ["table", "tree"]
BACKENDS = ["numpy", "torch"]


@pytest.mark.parametrize("prior_kind", PRIORS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_alpha_grid_equals_brute_force(prior_kind, kernel, backend):
    """Split-α grid, joint and marginal mode, against enumeration (a JointPrior forced onto the
    tree kernel decodes its Chow–Liu projection, so brute force uses that projection)."""
    rng = np.random.default_rng(1)
    prior = make_prior(prior_kind, 1)
    exact = TreePrior.from_joint(prior) if (prior_kind == "joint" and kernel == "tree") else prior
    lp = random_log_probs(rng, 40, N_CLASSES)
    am = np.array([a for a, _ in GRID])
    ad = np.array([d for _, d in GRID])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new entry point warns about nothing
        joint = gmtl_decode(as_backend(lp, backend), prior, alpha_marginal=am, alpha_dependence=ad,
                            kernel=kernel, backend=backend, marginals=True)  # fmt: skip
        marg = gmtl_decode(as_backend(lp, backend), prior, alpha_marginal=am, alpha_dependence=ad,
                           kernel=kernel, backend=backend, mode="marginal")  # fmt: skip
    assert joint.kernel == kernel and joint.info.backend == backend
    assert isinstance(joint.labels, torch.Tensor) == (backend == "torch")
    assert joint.labels.shape == (len(GRID), 40, len(N_CLASSES))
    for i, (a_m, a_d) in enumerate(GRID):
        want, want_m, f = brute_labels_and_marginals(lp, exact, a_m, a_d)
        got = to_numpy(joint.labels[i])
        # the decoded labels attain the maximum; equal to brute force's argmax (ties: none here)
        flat = np.ravel_multi_index(got.T, N_CLASSES)
        np.testing.assert_allclose(f[np.arange(40), flat], f.max(axis=1), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(got, want)
        for m, w in zip(joint.marginals, want_m):
            np.testing.assert_allclose(np.exp(to_numpy(m[i])), w, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(to_numpy(marg.labels[i]), np.stack([w.argmax(axis=1) for w in want_m], axis=1))


@pytest.mark.parametrize("prior_kind", PRIORS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_known_q_equals_brute_force(prior_kind, kernel, backend):
    rng = np.random.default_rng(2)
    prior = make_prior(prior_kind, 2)
    # q on the prior's tree (what the tree kernel needs); as a table for the table kernel
    q_tree = TreePrior.random(N_CLASSES, edges=EDGES, seed=3, concentration=0.6)
    q = q_tree if kernel == "tree" else q_tree.to_joint()
    exact = TreePrior.from_joint(prior, edges=EDGES) if (prior_kind == "joint" and kernel == "tree") else prior
    if exact is not prior:
        prior = exact  # a JointPrior on the tree kernel: give the tree-structured one directly
    lp = random_log_probs(rng, 30, N_CLASSES)
    res = gmtl_decode(as_backend(lp, backend), prior, q=q, kernel=kernel, backend=backend, marginals=True)
    want, want_m, _ = brute_labels_and_marginals(lp, prior, 1.0, 1.0, q=q_tree)
    np.testing.assert_array_equal(to_numpy(res.labels), want)
    for m, w in zip(res.marginals, want_m):
        np.testing.assert_allclose(np.exp(to_numpy(m)), w, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prior_kind", PRIORS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_are_the_objective(prior_kind, backend):
    rng = np.random.default_rng(4)
    prior = make_prior(prior_kind, 4)
    lp = random_log_probs(rng, 7, N_CLASSES)
    res = gmtl_decode(as_backend(lp, backend), prior, alpha=[0.0, 0.5, 1.0], scores=True, backend=backend)
    assert res.kernel == "table" and res.scores.shape == (3, 7, *N_CLASSES)
    for i, a in enumerate([0.0, 0.5, 1.0]):
        f, _ = brute_objective(lp, prior, a, a)
        np.testing.assert_allclose(to_numpy(res.scores[i]).reshape(7, -1), f, rtol=0, atol=1e-9)


def test_decoded_fields_are_the_documented_ones():
    assert [f.name for f in dataclasses.fields(Decoded)] == ["labels", "marginals", "scores", "kernel", "info"]
    assert [f.name for f in dataclasses.fields(DecodeInfo)] == ["method", "mode", "prior", "n_joint", "reason", "backend"]
    lp = random_log_probs(np.random.default_rng(5), 3, N_CLASSES)
    res = gmtl_decode(lp, make_prior("joint", 5), alpha=0.5)
    assert res.marginals is None and res.scores is None and res.labels.shape == (3, 4)
    assert res.info.method == res.kernel == "table" and res.info.mode == "joint"
    assert cm.gmtl_decode is gmtl_decode and cm.Decoded is Decoded


def test_deprecated_forms_warn_and_return_what_they_returned():
    rng = np.random.default_rng(6)
    prior = make_prior("tree", 6)
    lp = random_log_probs(rng, 20, N_CLASSES)
    new = gmtl_decode(lp, prior, alpha=[0.2, 0.9], marginals=True)
    with pytest.warns(DeprecationWarning, match="gmtl_decode"):
        old = cm.decode(lp, prior, alpha=[0.2, 0.9])
    assert isinstance(old, np.ndarray)
    np.testing.assert_array_equal(old, new.labels)
    with pytest.warns(DeprecationWarning, match="decode_structured is deprecated"):
        labels, margs, info = decode_structured(lp, prior, alpha=[0.2, 0.9], return_marginals=True, return_info=True)
    np.testing.assert_array_equal(labels, new.labels)
    for a, b in zip(margs, new.marginals):
        np.testing.assert_array_equal(a, b)
    assert info == new.info
    with pytest.warns(DeprecationWarning):
        y, scores = cm.decode(lp, prior.to_joint(), alpha=0.5, return_scores=True)
    np.testing.assert_array_equal(scores, gmtl_decode(lp, prior.to_joint(), alpha=0.5, scores=True).scores)


def test_bad_arguments_name_themselves():
    lp = random_log_probs(np.random.default_rng(7), 4, N_CLASSES)
    prior = make_prior("tree", 7)
    with pytest.raises(ValueError, match="kernel must be 'auto', 'table' or 'tree', got 'full'"):
        gmtl_decode(lp, prior, kernel="full")
    with pytest.raises(ValueError, match="give either alpha or q, not both"):
        gmtl_decode(lp, prior, alpha=0.5, q=prior)
    with pytest.raises(ValueError, match="q must be a TreePrior on the prior's tree"):
        gmtl_decode(lp, prior, q=prior.to_joint(), kernel="tree")
    with pytest.raises(ValueError, match="scores=True needs the table kernel"):
        gmtl_decode(lp, prior, scores=True, kernel="tree")
    with pytest.raises(ValueError, match=r"log_probs\[2\] must have shape \(N, 2\)"):
        gmtl_decode([lp[0], lp[1], lp[1], lp[3]], prior)


# ---------------------------------------------------------------------------------------------
# the Prior protocol, on both priors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior_kind", PRIORS)
def test_prior_protocol(prior_kind):
    prior = make_prior(prior_kind, 8)
    assert isinstance(prior, Prior)  # runtime check of every protocol member (small prior)
    assert prior.structure == ("tree" if prior_kind == "tree" else "table")
    ys = np.array(list(itertools.product(*[range(c) for c in N_CLASSES])))
    table = prior.table_log_prob()
    np.testing.assert_allclose(prior.log_pmf(ys), table.reshape(-1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(table).sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(prior.probs, np.exp(prior.log_prob), rtol=1e-12)
    joint = prior.to_joint()
    assert isinstance(joint, JointPrior) and joint.n_classes == prior.n_classes
    for t in range(prior.n_tasks):
        np.testing.assert_allclose(prior.marginal(t), np.exp(table).sum(axis=tuple(a for a in range(4) if a != t)),
                                   atol=1e-12)  # fmt: skip
        np.testing.assert_allclose(prior.log_marginals()[t], np.log(prior.marginals()[t]), rtol=0, atol=0)
    for s, t in [(0, 1), (1, 0), (2, 3)]:  # an edge, a reversed edge, a non-edge of the tree
        want = np.exp(table).sum(axis=tuple(a for a in range(4) if a not in (s, t)))
        np.testing.assert_allclose(prior.pair_marginal(s, t), want if s < t else want.T, atol=1e-12)
    assert prior.zero_summary() == "" and not prior.has_zeros


def test_zero_summary_names_the_zeros():
    assert JointPrior.from_probs([[0.5, 0.0], [0.0, 0.5]]).zero_summary().startswith("2 joint cells")
    tree = TreePrior.from_marginals((2, 2), [(0, 1)], [[[0.5, 0.0], [0.0, 0.5]]])
    assert tree.zero_summary() == "2 edge cells and 0 node cells with probability 0"
