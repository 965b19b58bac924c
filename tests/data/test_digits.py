"""Multi-Digits: disjoint image pools, the two shift protocols, determinism, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from causalmtl.data import biased_joint, load_digit_images, make_multi_digits


@pytest.fixture(scope="module")
def biased():
    q = np.random.default_rng(0).dirichlet(np.ones(100)).reshape(10, 10)
    return make_multi_digits("biased", n_train=20_000, n_valid=500, n_test=20_000, m=0.7, test_joint=q, seed=11), q


@pytest.fixture(scope="module")
def pairs():
    return make_multi_digits("pairs", n_train=3000, n_valid=1000, n_test=1000, seed=4)


def test_no_image_in_two_splits(biased, pairs):
    for splits in (biased[0], pairs):
        pools = splits.meta["pools"]
        for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
            assert np.intersect1d(pools[a], pools[b]).size == 0
        used = {k: np.unique(v) for k, v in splits.meta["source_index"].items()}
        for k, v in used.items():
            assert np.isin(v, pools[k]).all()
        assert np.intersect1d(used["train"], used["test"]).size == 0
        assert np.intersect1d(used["train"], used["valid"]).size == 0


def test_pixels_are_the_source_digits_side_by_side(pairs):
    images, labels = load_digit_images()
    src = pairs.meta["source_index"]["test"]
    x = pairs.test.inputs
    np.testing.assert_array_equal(x[:, 0, :, :8], images[src[:, 0]] / np.float32(16))
    np.testing.assert_array_equal(x[:, 0, :, 8:], images[src[:, 1]] / np.float32(16))
    np.testing.assert_array_equal(pairs.test.labels, labels[src])
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1


def test_causal_blocks_are_left_and_right_halves(pairs):
    left, right = pairs.meta["causal_blocks"]
    mask = np.zeros((1, 8, 16), dtype=bool)
    mask.reshape(-1)[left] = True
    assert mask[..., :8].all() and not mask[..., 8:].any()
    assert np.union1d(left, right).tolist() == list(range(128)) and np.intersect1d(left, right).size == 0


def test_pairs_protocol_no_label_pair_shared(pairs):
    p = pairs.meta["pairs"]
    assert [len(p[k]) for k in ("train", "valid", "test")] == [60, 20, 20]
    keys = {k: set(map(tuple, v.tolist())) for k, v in p.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["valid"] and not keys["valid"] & keys["test"]
    assert len(keys["train"] | keys["valid"] | keys["test"]) == 100
    for split, ds in pairs:
        seen = set(map(tuple, ds.labels.tolist()))
        assert seen <= keys[split]
    train_seen = set(map(tuple, pairs.train.labels.tolist()))
    assert not train_seen & set(map(tuple, pairs.test.labels.tolist()))


def test_biased_protocol_matches_requested_joint(biased):
    splits, q = biased
    n = 20_000
    for table, target in [(splits.train.joint_table(), biased_joint(10, 0.7)), (splits.test.joint_table(), q)]:
        se = np.sqrt(target * (1 - target) / n)
        assert np.all(np.abs(table - target) < 5 * se + 1e-12)
    np.testing.assert_allclose(biased_joint(10, 0.7).sum(), 1.0)
    # "y' = y with probability m, else uniform": P(y' = y) = m + (1 - m)/10
    assert np.trace(biased_joint(10, 0.7)) == pytest.approx(0.7 + 0.03)
    assert [int(s.env[0]) for _, s in splits] == [0, 1, 2]
    np.testing.assert_array_equal(splits.meta["true_joint"]["valid"], splits.meta["true_joint"]["train"])


def test_same_seed_same_data_and_fast():
    t0 = time.perf_counter()
    a = make_multi_digits("pairs", n_train=2000, n_valid=500, n_test=500, seed=3)
    assert time.perf_counter() - t0 < 5.0
    b = make_multi_digits("pairs", n_train=2000, n_valid=500, n_test=500, seed=3)
    c = make_multi_digits("pairs", n_train=2000, n_valid=500, n_test=500, seed=4)
    for (_, sa), (_, sb) in zip(a, b):
        np.testing.assert_array_equal(sa.inputs, sb.inputs)
        np.testing.assert_array_equal(sa.targets, sb.targets)
    assert not np.array_equal(a.train.targets, c.train.targets)


def test_uint8_and_pool_counts():
    s = make_multi_digits(n_train=50, n_valid=50, n_test=50, pool_sizes=(1000, 300, 300), dtype="uint8", seed=0)
    assert s.train.inputs.dtype == np.uint8 and s.train.inputs.max() <= 16
    sizes = [len(s.meta["pools"][k]) for k in ("train", "valid", "test")]
    assert abs(sizes[0] - 1000) <= 10 and abs(sizes[1] - 300) <= 10


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"m must lie in \[0, 1\], got 1.2"):
        make_multi_digits(m=1.2, n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match=r"test_joint must be a joint table over the classes \(10, 10\).*\(2, 2\)"):
        make_multi_digits(test_joint=np.full((2, 2), 0.25), n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match="test_joint must sum to 1"):
        make_multi_digits(test_joint=np.full((10, 10), 0.02), n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match="too few images.*need 2000 images but sklearn digits has 1797"):
        make_multi_digits(pool_sizes=(1500, 250, 250), n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match="too few images.*has no image of class"):
        make_multi_digits(pool_sizes=(0.9, 0.09, 0.001), n_train=10, n_valid=10, n_test=100)
    with pytest.raises(ValueError, match="protocol must be"):
        make_multi_digits("c", n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match="only used by protocol='biased'"):
        make_multi_digits("pairs", test_joint=np.full(100, 0.01), n_train=10, n_valid=10, n_test=10)
    with pytest.raises(ValueError, match="n_test"):
        make_multi_digits(n_test=0)


def test_images_equal_sklearn_load_digits():
    from sklearn.datasets import load_digits

    images, labels = load_digit_images()
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)
