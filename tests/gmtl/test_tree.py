"""TreePrior: Chow–Liu structure, smoothing formulas, (T1), constructors and bad input."""

import itertools

import numpy as np
import pytest

from causalmtl.gmtl import JointPrior
from causalmtl.gmtl.priors.tree import (
    TreePrior,
    _mutual_information,
    check_forest,
    random_tree_edges,
)


def directed_log_prob(prior: TreePrior, y: np.ndarray) -> np.ndarray:
    """log p(y) by the directed factorisation p(root) Π p(y_t | y_parent), independent of (T1)."""
    adj = {t: [] for t in range(prior.n_tasks)}
    for e, (s, t) in enumerate(prior.edges):
        adj[s].append((t, e))
        adj[t].append((s, e))
    seen, out = set(), np.zeros(len(y))
    for r in range(prior.n_tasks):
        if r in seen:
            continue
        seen.add(r)
        out += np.log(prior.node_probs[r][y[:, r]])
        stack = [r]
        while stack:
            s = stack.pop()
            for t, e in adj[s]:
                if t in seen:
                    continue
                seen.add(t)
                pair = prior.pair_probs[e] if prior.edges[e][0] == s else prior.pair_probs[e].T
                cond = pair / pair.sum(axis=1, keepdims=True)
                out += np.log(cond[y[:, s], y[:, t]])
                stack.append(t)
    return out


def all_labels(n_classes):
    return np.array(list(itertools.product(*[range(c) for c in n_classes])))


@pytest.mark.parametrize("seed", [0, 1])
def test_chow_liu_recovers_generating_tree(seed):
    n_classes = (2, 3, 2, 4, 2, 3, 2, 2)
    truth = TreePrior.random(n_classes, seed=seed, concentration=0.3)
    assert min(_mutual_information(p) for p in truth.pair_probs) > 0.005  # identifiable
    labels = truth.sample(20000, seed=seed + 10)
    fitted = TreePrior.fit(labels, n_classes, pseudocount=1.0)
    assert fitted.edges == truth.edges


def test_chow_liu_recovers_tree_with_missing_labels_pairwise():
    n_classes = (2, 2, 3, 2, 2, 3)
    truth = TreePrior.random(n_classes, seed=7, concentration=0.3)
    assert min(_mutual_information(p) for p in truth.pair_probs) > 0.1  # identifiable
    labels = truth.sample(30000, seed=6)
    rng = np.random.default_rng(7)
    labels[rng.random(labels.shape) < 0.3] = -1
    assert not (labels >= 0).all(axis=1).all()
    fitted = TreePrior.fit(labels, n_classes, pseudocount=1.0, missing="pairwise")
    assert fitted.edges == truth.edges
    assert fitted.n_fitted == int((labels >= 0).any(axis=1).sum())


def test_complete_mode_uses_only_fully_labelled_rows():
    labels = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 0], [0, -1, 1], [1, 0, -1]])
    a = TreePrior.fit(labels, (2, 2, 2), pseudocount=0.5, missing="complete", edges=[(0, 1), (1, 2)])
    b = TreePrior.fit(labels[:3], (2, 2, 2), pseudocount=0.5, edges=[(0, 1), (1, 2)])
    for p, q in zip(a.pair_probs, b.pair_probs):
        np.testing.assert_array_equal(p, q)


def test_mle_pair_marginals_are_empirical_frequencies():
    rng = np.random.default_rng(0)
    labels = np.stack([rng.integers(0, 2, 500), rng.integers(0, 3, 500), rng.integers(0, 2, 500)], 1)
    labels[:, 2] = (labels[:, 0] + (rng.random(500) < 0.2)) % 2
    prior = TreePrior.fit(labels, (2, 3, 2), pseudocount=0.0, edges=[(0, 1), (0, 2)])
    for (s, t), p in zip(prior.edges, prior.pair_probs):
        emp = np.zeros((prior.n_classes[s], prior.n_classes[t]))
        np.add.at(emp, (labels[:, s], labels[:, t]), 1.0)
        np.testing.assert_allclose(p, emp / len(labels), rtol=0, atol=1e-12)


def test_smoothing_formula_T4():
    labels = np.array([[0, 0], [0, 1], [0, 1], [1, 1], [1, 1], [-1, 0]])
    eps = 0.5
    prior = TreePrior.fit(labels, (2, 3), pseudocount=eps, edges=[(0, 1)])
    # root 0: labelled rows 0..4 -> counts (3, 2)
    root = (np.array([3.0, 2.0]) + eps) / (5 + 2 * eps)
    np.testing.assert_allclose(prior.node_probs[0], root, rtol=1e-13)
    counts = np.array([[1.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    cond = (counts + eps) / (counts.sum(1, keepdims=True) + 3 * eps)
    np.testing.assert_allclose(prior.pair_probs[0], root[:, None] * cond, rtol=1e-13)
    np.testing.assert_allclose(prior.node_probs[1], root @ cond, rtol=1e-13)


def test_log_prob_identity_T1_and_normalisation():
    n_classes = (3, 2, 2, 4, 2)
    prior = TreePrior.random(n_classes, seed=3)
    y = all_labels(n_classes)
    lp = prior.log_pmf(y)
    np.testing.assert_allclose(lp, directed_log_prob(prior, y), atol=1e-12)
    np.testing.assert_allclose(prior.log_prob.reshape(-1), lp, atol=1e-12)
    assert abs(prior.probs.sum() - 1.0) < 1e-12
    # split (T2): log p = Σ log p_t + Σ PMI
    split = sum(np.log(prior.node_probs[t][y[:, t]]) for t in range(5))
    split = split + sum(prior.pmi(e)[y[:, s], y[:, t]] for e, (s, t) in enumerate(prior.edges))
    np.testing.assert_allclose(split, lp, atol=1e-12)


def test_fitted_prior_marginals_are_consistent_with_table():
    rng = np.random.default_rng(1)
    n_classes = (2, 3, 2, 2)
    labels = rng.integers(0, 2, size=(200, 4))
    labels[:, 1] = rng.integers(0, 3, 200)
    labels[rng.random(labels.shape) < 0.1] = -1
    prior = TreePrior.fit(labels, n_classes, pseudocount=1.0)
    table = prior.probs
    for t in range(4):
        np.testing.assert_allclose(table.sum(axis=tuple(a for a in range(4) if a != t)), prior.marginal(t), atol=1e-12)
    for (s, t), p in zip(prior.edges, prior.pair_probs):
        np.testing.assert_allclose(table.sum(axis=tuple(a for a in range(4) if a not in (s, t))), p, atol=1e-12)


def test_from_joint_is_exact_for_a_tree_distribution_and_keeps_pair_marginals():
    n_classes = (2, 3, 2, 2)
    tree = TreePrior.random(n_classes, seed=8)
    back = TreePrior.from_joint(tree.to_joint())
    assert back.edges == tree.edges
    np.testing.assert_allclose(back.probs, tree.probs, atol=1e-12)
    rng = np.random.default_rng(2)
    joint = JointPrior.from_probs(rng.dirichlet(np.ones(24)).reshape(n_classes))
    proj = TreePrior.from_joint(joint, edges=[(0, 1), (1, 2), (1, 3)])
    np.testing.assert_allclose(proj.pair_probs[0], joint.probs.sum(axis=(2, 3)), atol=1e-12)


def test_forest_threshold_drops_weak_edges():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, 5000)
    b = rng.integers(0, 2, 5000)
    flip = lambda x, p: (x + (rng.random(5000) < p)) % 2  # noqa: E731
    labels = np.stack([a, flip(a, 0.1), b, flip(b, 0.1)], axis=1)
    tree = TreePrior.fit(labels, (2,) * 4)
    forest = TreePrior.fit(labels, (2,) * 4, threshold=0.05)
    assert len(tree.edges) == 3
    assert forest.edges == ((0, 1), (2, 3))
    empty = TreePrior.fit(labels, (2,) * 4, threshold=10.0)
    assert empty.edges == ()
    y = all_labels((2,) * 4)
    indep = sum(np.log(empty.node_probs[t][y[:, t]]) for t in range(4))
    np.testing.assert_allclose(empty.log_pmf(y), indep, atol=1e-12)


def test_user_given_tree_is_used():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=(300, 4))
    prior = TreePrior.fit(labels, (2,) * 4, edges=[(3, 0), (0, 1), (2, 1)])
    assert prior.edges == ((0, 1), (0, 3), (1, 2))


def test_sample_matches_probs():
    prior = TreePrior.random((2, 3, 2), seed=9)
    y = prior.sample(40000, seed=1)
    emp = np.zeros(prior.n_classes)
    np.add.at(emp, tuple(y.T), 1.0)
    emp /= len(y)
    sd = np.sqrt(prior.probs * (1 - prior.probs) / len(y))
    assert np.all(np.abs(emp - prior.probs) < 5 * sd + 1e-9)
    np.testing.assert_array_equal(y, prior.sample(40000, seed=1))


def test_random_tree_edges_is_a_spanning_tree():
    edges = random_tree_edges(30, seed=2)
    assert len(edges) == 29
    assert check_forest(edges, 30) == edges


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edges", "match"),
    [
        ([(0, 5)], r"edges\[0\] = \(0, 5\) names task 5, outside \[0, 4\)"),
        ([(0, 1), (2, 2)], r"edges\[1\] = \(2, 2\) is a self-loop"),
        ([(0, 1), (1, 0)], r"edges\[1\] = \(1, 0\) is a duplicate"),
        ([(0, 1), (1, 2), (0, 2)], r"edges\[2\] = \(0, 2\) closes a cycle"),
        ([(0, 1, 2)], r"edges\[0\] = \(0, 1, 2\) is not a pair"),
        ([(0, 1.5)], r"edges\[0\] = \(0, 1.5\) is not a pair"),
        (5, r"edges must be a sequence"),
    ],
)
def test_bad_tree_names_edge(edges, match):
    labels = np.zeros((4, 4), dtype=int)
    with pytest.raises(ValueError, match=match):
        TreePrior.fit(labels, (2,) * 4, edges=edges)


def test_single_class_task_rejected():
    with pytest.raises(ValueError, match=r"n_classes\[1\] must be an int >= 2"):
        TreePrior.fit(np.zeros((3, 2), dtype=int), (2, 1))


def test_pseudocount_checks():
    labels = np.array([[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="pseudocount must be a finite number >= 0, got -1"):
        TreePrior.fit(labels, (2, 2), pseudocount=-1)
    with pytest.raises(ValueError, match=r"pseudocount=0 but edge \(0, 1\) never shows \(y_0=0, y_1=1\)"):
        TreePrior.fit(labels, (2, 2), pseudocount=0, edges=[(0, 1)])
    with pytest.raises(ValueError, match=r"pseudocount=0 but class 1 of task 0"):
        TreePrior.fit(np.array([[0, 0], [0, 1]]), (2, 2), pseudocount=0, edges=[])
    full = np.array(list(itertools.product(range(2), range(2))))
    assert TreePrior.fit(full, (2, 2), pseudocount=0).pseudocount == 0.0


def test_other_fit_arguments_checked():
    labels = np.zeros((3, 3), dtype=int)
    with pytest.raises(ValueError, match="threshold must be a finite number of nats >= 0, got -0.1"):
        TreePrior.fit(labels, (2,) * 3, threshold=-0.1)
    with pytest.raises(ValueError, match="either edges .* or threshold"):
        TreePrior.fit(labels, (2,) * 3, threshold=0.1, edges=[(0, 1)])
    with pytest.raises(ValueError, match="missing must be 'pairwise' or 'complete', got 'drop'"):
        TreePrior.fit(labels, (2,) * 3, missing="drop")
    with pytest.raises(ValueError, match=r"labels\[0, 2\] = 2 is outside"):
        TreePrior.fit(np.array([[0, 0, 2]]), (2,) * 3)


def test_from_marginals_rejects_inconsistent_marginals():
    good = [[0.4, 0.1], [0.1, 0.4]]
    bad = [[0.7, 0.1], [0.1, 0.1]]
    with pytest.raises(ValueError, match=r"the marginal of task 1 from edge \(1, 2\)"):
        TreePrior.from_marginals((2, 2, 2), [(0, 1), (1, 2)], [good, bad])
    with pytest.raises(ValueError, match=r"task 2 has no edge, so node_probs\[2\] must be given"):
        TreePrior.from_marginals((2, 2, 2), [(0, 1)], [good])
    with pytest.raises(ValueError, match=r"pair_probs\[0\] for edge \(0, 1\) must have shape \(2, 3\)"):
        TreePrior.from_marginals((2, 3), [(0, 1)], [good])


def test_table_refused_when_too_large():
    prior = TreePrior.random((2,) * 40, seed=0)
    with pytest.raises(ValueError, match=r"Π C_t = 1099511627776 cells"):
        _ = prior.probs
    assert prior.log_pmf(np.zeros((2, 40), dtype=int)).shape == (2,)


def test_same_structure_names_differing_edges():
    a = TreePrior.random((2,) * 4, edges=[(0, 1), (1, 2), (2, 3)], seed=0)
    b = TreePrior.random((2,) * 4, edges=[(0, 1), (1, 2), (1, 3)], seed=0)
    with pytest.raises(ValueError, match=r"it has \[\(1, 3\)\] that the prior lacks and lacks \[\(2, 3\)\]"):
        a.same_structure(b)


def test_pairs_never_labelled_together_are_not_joined(caplog):
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 2, size=(400, 4))
    labels[:200, 2:] = -1  # tasks {0,1} and {2,3} are never labelled in the same row
    labels[200:, :2] = -1
    with caplog.at_level("WARNING", logger="causalmtl.gmtl.priors.tree"):
        prior = TreePrior.fit(labels, (2,) * 4)
    assert prior.edges == ((0, 1), (2, 3))
    assert np.isnan(prior.mutual_info[0, 2]) and "forest" in caplog.text


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 2, size=(300, 5))
    labels[:, 2] = rng.integers(0, 3, 300)
    prior = TreePrior.fit(labels, (2, 2, 3, 2, 2), pseudocount=0.5, threshold=0.001)
    prior.save(tmp_path / "tree.npz")
    back = TreePrior.load(tmp_path / "tree.npz")
    assert back.edges == prior.edges and back.n_classes == prior.n_classes
    assert back.pseudocount == 0.5 and back.n_fitted == 300
    for a, b in zip(back.pair_probs + back.node_probs, prior.pair_probs + prior.node_probs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.mutual_info, prior.mutual_info)
    JointPrior.uniform((2, 2)).save(tmp_path / "joint.npz")
    with pytest.raises(ValueError, match="is not a TreePrior file"):
        TreePrior.load(tmp_path / "joint.npz")
