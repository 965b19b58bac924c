import numpy as np
import pytest

from causalmtl.gmtl import JointPrior


def test_counts_smoothing_and_missing_rows_by_hand():
    labels = np.array([[0, 1], [0, 1], [2, 0], [1, -1], [-1, -1], [2, 1]])
    prior = JointPrior.fit(labels, n_classes=(3, 2), pseudocount=0.5)
    # fully labelled rows: (0,1) twice, (2,0), (2,1); rows 3 and 4 are excluded
    expected_counts = np.array([[0, 2], [0, 0], [1, 1]], dtype=float)
    np.testing.assert_array_equal(prior.counts, expected_counts)
    assert prior.n_fitted == 4
    expected = (expected_counts + 0.5) / (4 + 0.5 * 6)
    np.testing.assert_allclose(prior.probs, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(prior.log_prob, np.log(expected), atol=1e-15)
    assert prior.log_prob.shape == (3, 2)
    np.testing.assert_allclose(prior.marginal(0), expected.sum(axis=1))
    np.testing.assert_allclose(prior.marginal(1), expected.sum(axis=0))


def test_three_tasks_joint_index_is_c_order():
    labels = np.array([[1, 0, 2], [1, 0, 2], [0, 1, 0]])
    prior = JointPrior.fit(labels, (2, 2, 3), pseudocount=0.0)
    flat = prior.probs.reshape(-1)
    assert flat[np.ravel_multi_index((1, 0, 2), (2, 2, 3))] == pytest.approx(2 / 3)
    assert flat[np.ravel_multi_index((0, 1, 0), (2, 2, 3))] == pytest.approx(1 / 3)
    assert prior.has_zeros


def test_marginalize_reorders_tasks():
    rng = np.random.default_rng(0)
    p = rng.random((2, 3, 4))
    prior = JointPrior.from_probs(p / p.sum())
    sub = prior.marginalize([2, 0])
    np.testing.assert_allclose(sub.probs, (p / p.sum()).sum(axis=1).T)
    assert sub.n_classes == (4, 2)


def test_from_counts_and_save_load_roundtrip(tmp_path):
    prior = JointPrior.from_counts(np.array([[3, 0], [1, 4]]), pseudocount=1.0)
    np.testing.assert_allclose(prior.probs, np.array([[4, 1], [2, 5]]) / 12)
    path = tmp_path / "prior.npz"
    prior.save(path)
    back = JointPrior.load(path)
    np.testing.assert_array_equal(back.probs, prior.probs)
    np.testing.assert_array_equal(back.counts, prior.counts)
    assert (back.n_classes, back.pseudocount, back.n_fitted) == ((2, 2), 1.0, 8)
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a JointPrior file"):
        JointPrior.load(tmp_path / "other.npz")


def test_from_probs_checks():
    with pytest.raises(ValueError, match="negative entry"):
        JointPrior.from_probs([[0.5, 0.6], [-0.1, 0.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        JointPrior.from_probs([[0.5, 0.6], [0.1, 0.0]])
    with pytest.raises(ValueError, match="int >= 2"):
        JointPrior.from_probs([[1.0], [0.0]])


@pytest.mark.parametrize(
    "labels, n_classes, match",
    [
        (np.array([[0, 2]]), (2, 2), r"labels\[0, 1\] = 2 is outside \[-1, 2\)"),
        (np.array([[0, -2]]), (2, 2), r"labels\[0, 1\] = -2"),
        (np.array([[0, 1, 1]]), (2, 2), "3 task columns but n_classes names 2"),
        (np.zeros((0, 2), dtype=int), (2, 2), "empty"),
        (np.array([[0.5, 1.0]]), (2, 2), "integer class labels"),
    ],
)
def test_bad_labels(labels, n_classes, match):
    with pytest.raises(ValueError, match=match):
        JointPrior.fit(labels, n_classes)


def test_bad_pseudocount_and_nothing_to_count():
    with pytest.raises(ValueError, match="pseudocount"):
        JointPrior.fit(np.array([[0, 0]]), (2, 2), pseudocount=-1)
    with pytest.raises(ValueError, match="no fully-labelled row"):
        JointPrior.fit(np.array([[0, -1]]), (2, 2), pseudocount=0)
