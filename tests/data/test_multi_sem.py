"""Multi-SEM (MT-CRL App. A, C.1): label agreement per split and the known causal blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from causalmtl.data import agreement_rates, make_multi_sem, sem_label_table


def brute_pair_agreement(table: np.ndarray, s: int, t: int) -> float:
    return sum(
        table[y] for y in itertools.product((0, 1), repeat=table.ndim) if y[s] == y[t]
    )


@pytest.mark.parametrize("structure", ["hub", "latent"])
def test_two_task_table_is_paper_table_4(structure):
    m = 0.8
    p = sem_label_table(2, m, structure)
    np.testing.assert_allclose(p, [[m / 2, (1 - m) / 2], [(1 - m) / 2, m / 2]], atol=1e-15)


@pytest.mark.parametrize("n_tasks", [3, 5, 8])
def test_hub_structure_agreement_with_first_task(n_tasks):
    m = 0.3
    p = sem_label_table(n_tasks, m, "hub")
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    for t in range(n_tasks):  # balanced marginals
        assert np.moveaxis(p, t, 0)[1].sum() == pytest.approx(0.5, abs=1e-12)
    for t in range(1, n_tasks):
        assert brute_pair_agreement(p, 0, t) == pytest.approx(m, abs=1e-12)
    assert brute_pair_agreement(p, 1, 2) == pytest.approx(m**2 + (1 - m) ** 2, abs=1e-12)


def test_latent_structure_every_pair_agrees_with_m():
    p = sem_label_table(4, 0.75, "latent")
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    for s, t in itertools.combinations(range(4), 2):
        assert brute_pair_agreement(p, s, t) == pytest.approx(0.75, abs=1e-12)


def test_empirical_agreement_matches_m_per_split():
    n = 20_000
    splits = make_multi_sem(n_tasks=3, dim=2, n_train=n, n_valid=n, n_test=n, m_train=0.9, m_valid=0.6, m_test=0.2, seed=1)
    for split, m in [("train", 0.9), ("valid", 0.6), ("test", 0.2)]:
        rates = agreement_rates(getattr(splits, split).labels)
        se = np.sqrt(m * (1 - m) / n)
        assert abs(rates[0, 1] - m) < 5 * se and abs(rates[0, 2] - m) < 5 * se
        assert splits.meta["m"][split] == m
    assert [int(s.env[0]) for _, s in splits] == [0, 1, 2]
    # empirical joint tables match the exact ones
    for split, table in splits.joint_tables().items():
        np.testing.assert_allclose(table, splits.meta["true_joint"][split], atol=0.02)


@pytest.mark.parametrize("rotate", [False, True])
def test_causal_blocks_are_where_the_dataset_says(rotate):
    # m = 0.5 with the hub structure: labels independent, so only the causal block moves with Y_t
    n, d, t_count = 40_000, 3, 3
    splits = make_multi_sem(n_tasks=t_count, dim=d, n_train=n, n_valid=10, n_test=10, m_train=0.5, signal=1.0, rotate=rotate, seed=2)
    x = splits.train.inputs.astype(np.float64)
    if rotate:
        r = splits.meta["rotation"]
        np.testing.assert_allclose(r @ r.T, np.eye(t_count * d), atol=1e-12)
        x = x @ r  # back to factor coordinates F = X R
    y = splits.train.labels
    blocks = splits.meta["causal_blocks"]
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    tol = 5 * 2 * np.sqrt(2 / n) * 1.0  # 5 SE of a difference of two means with σ = 1
    for t in range(t_count):
        diff = x[y[:, t] == 1].mean(0) - x[y[:, t] == 0].mean(0)
        np.testing.assert_allclose(diff[blocks[t]], 2 * splits.meta["mu"][t], atol=tol)
        others = np.setdiff1d(np.arange(t_count * d), blocks[t])
        assert np.abs(diff[others]).max() < tol


def test_same_seed_same_data():
    a = make_multi_sem(n_train=50, n_valid=20, n_test=20, rotate=True, seed=5)
    b = make_multi_sem(n_train=50, n_valid=20, n_test=20, rotate=True, seed=5)
    c = make_multi_sem(n_train=50, n_valid=20, n_test=20, rotate=True, seed=6)
    for (_, sa), (_, sb) in zip(a, b):
        np.testing.assert_array_equal(sa.inputs, sb.inputs)
        np.testing.assert_array_equal(sa.targets, sb.targets)
    assert not np.array_equal(a.train.inputs, c.train.inputs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"n_tasks must be an int in \[2, 8\], got 9"):
        make_multi_sem(n_tasks=9)
    with pytest.raises(ValueError, match="n_tasks"):
        make_multi_sem(n_tasks=1)
    with pytest.raises(ValueError, match=r"m_test must lie in \[0, 1\], got 1.5"):
        make_multi_sem(m_test=1.5)
    with pytest.raises(ValueError, match="m_train"):
        make_multi_sem(m_train=-0.1)
    with pytest.raises(ValueError, match="structure='latent'"):
        sem_label_table(3, 0.2, "latent")
    with pytest.raises(ValueError, match="structure must be"):
        sem_label_table(3, 0.2, "chain")
    with pytest.raises(ValueError, match="sigma"):
        make_multi_sem(n_tasks=2, sigma=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="mu must be"):
        make_multi_sem(n_tasks=2, dim=3, mu=np.ones((2, 4)))
    with pytest.raises(ValueError, match="n_train"):
        make_multi_sem(n_train=0)
