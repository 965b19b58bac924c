"""Analysis of §6 / Figure 3: τ bins, optimal α, gain, correlation; the end-to-end evaluation."""

from __future__ import annotations

import doctest
import importlib
import logging

import numpy as np
import pytest

from causalmtl.shift import (
    ShiftDraws,
    analyze,
    bin_by_tau,
    evaluate_shift,
    importance_accuracy,
    pooled_correlation,
    sample_q,
    severity,
)


def _quadratic_case(per_bin: int = 20):
    """τ symmetric inside each of 5 bins over [-1, 1]; accuracy peaks at α*(τ) = (1 − τ)/2."""
    alphas = np.round(np.linspace(0, 1, 11), 10)
    mids = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
    offsets = np.linspace(-0.15, 0.15, per_bin)
    tau = (mids[:, None] + offsets[None, :]).reshape(-1)
    star = (1 - tau) / 2
    acc = 0.8 - (alphas[None, :] - star[:, None]) ** 2
    return tau, acc, alphas, mids


def test_known_optimum_per_bin():
    tau, acc, alphas, mids = _quadratic_case()
    res = analyze(ShiftDraws(tau, acc, alphas), tau_range=(-1.0, 1.0))
    np.testing.assert_allclose(res.midpoints, mids, atol=1e-12)
    np.testing.assert_allclose(res.edges, np.linspace(-1, 1, 6), atol=1e-12)
    # within a bin τ is symmetric around the midpoint, so the mean of (α − α*(τ))² is
    # minimised on the grid at α*(midpoint)
    np.testing.assert_allclose(res.optimal_alpha, [0.9, 0.7, 0.5, 0.3, 0.1], atol=1e-12)
    assert res.correlation == pytest.approx(-1.0, abs=1e-12)
    assert np.all(np.diff(res.gain) < 0)  # gain grows with severity (decreasing τ)
    # gain = mean over the bin of α*(τ)² − (α_opt − α*(τ))², computed directly
    _, idx = bin_by_tau(tau, tau_range=(-1.0, 1.0))
    star = (1 - tau) / 2
    for b in range(5):
        s = star[idx == b]
        expected = np.mean(s**2) - np.mean((res.optimal_alpha[b] - s) ** 2)
        assert res.gain[b] == pytest.approx(expected, abs=1e-12)
        np.testing.assert_allclose(res.mean_accuracy[b], acc[idx == b].mean(axis=0), atol=1e-12)
    assert res.counts.sum() == len(tau) and res.empty_bins == ()


def test_bins_are_histogram_like():
    tau = np.array([0.0, 0.1, 0.2, 0.5, 1.0])
    edges, idx = bin_by_tau(tau, n_bins=2)
    np.testing.assert_allclose(edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 1])
    counts = np.bincount(idx, minlength=2)
    np.testing.assert_array_equal(counts, np.histogram(tau, bins=edges)[0])


def test_empty_bin_is_reported_not_a_crash(caplog):
    tau = np.array([-1.0, -0.95, 0.9, 1.0])
    acc = np.array([[0.5, 0.7], [0.5, 0.6], [0.9, 0.8], [0.8, 0.7]])
    with caplog.at_level(logging.WARNING):
        res = analyze(ShiftDraws(tau, acc, [0.0, 1.0]), n_bins=3)
    assert res.empty_bins == (1,)
    assert res.counts.tolist() == [2, 0, 2]
    assert np.isnan(res.optimal_alpha[1]) and np.isnan(res.gain[1])
    assert res.optimal_alpha[[0, 2]].tolist() == [1.0, 0.0]
    assert res.to_dict()["optimal_alpha"][1] is None
    assert "no draw" in caplog.text


def test_pooling_runs_and_pooled_correlation(tmp_path):
    tau, acc, alphas, _ = _quadratic_case()
    a = ShiftDraws(tau, acc, alphas, params={"sd": np.ones(len(tau))})
    b = ShiftDraws(tau, acc + 0.01, alphas, params={"sd": np.zeros(len(tau))})
    pooled = ShiftDraws.concatenate([a, b])
    assert len(pooled) == 2 * len(tau) and pooled.params["sd"].sum() == len(tau)
    res = analyze(pooled, tau_range=(-1.0, 1.0))
    np.testing.assert_allclose(res.optimal_alpha, [0.9, 0.7, 0.5, 0.3, 0.1], atol=1e-12)
    flat = analyze(
        ShiftDraws(tau, np.tile(acc[:, :1], (1, 11)), alphas)
    )  # constant α*: r undefined
    assert np.isnan(flat.correlation)
    r = pooled_correlation([res, analyze(a, tau_range=(-1.0, 1.0))])
    assert r == pytest.approx(-1.0, abs=1e-12)
    with pytest.raises(ValueError, match="alphas"):
        ShiftDraws.concatenate([a, ShiftDraws(tau, acc[:, :2], [0.0, 0.5])])


def test_csv_and_json_round_trip(tmp_path):
    tau, acc, alphas, _ = _quadratic_case(per_bin=3)
    d = ShiftDraws(tau, acc, alphas)
    d.to_csv(tmp_path / "draws.csv")
    header = (tmp_path / "draws.csv").read_text().splitlines()[0]
    assert header == "tau," + ",".join(
        f"acc_{a}"
        for a in ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]
    )
    back = ShiftDraws.read_csv(tmp_path / "draws.csv")
    np.testing.assert_array_equal(back.tau, d.tau)
    np.testing.assert_array_equal(back.accuracy, d.accuracy)
    np.testing.assert_array_equal(back.alphas, d.alphas)
    res = analyze(d)
    import json

    loaded = json.loads(res.to_json(tmp_path / "a.json"))
    assert loaded["optimal_alpha"] == pytest.approx(res.optimal_alpha.tolist())
    res.to_csv(tmp_path / "bins.csv")
    table = np.loadtxt(tmp_path / "bins.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 5], res.optimal_alpha)


def test_analysis_bad_input():
    with pytest.raises(ValueError, match="at least 2 draws"):
        analyze(ShiftDraws([0.1], [[0.5, 0.6]], [0.0, 1.0]))
    with pytest.raises(ValueError, match="alphas must include 0.0"):
        analyze(ShiftDraws([0.1, 0.2], [[0.5], [0.6]], [0.5]))
    with pytest.raises(ValueError, match=r"accuracy must have shape \(D, A\) = \(2, 2\)"):
        ShiftDraws([0.1, 0.2], [[0.5], [0.6]], [0.0, 1.0])
    with pytest.raises(ValueError, match="all 3 tau values equal"):
        bin_by_tau([0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="outside tau_range"):
        bin_by_tau([0.2, 1.5], tau_range=(-1, 1))
    with pytest.raises(ValueError, match="alphas must lie in"):
        ShiftDraws([0.1, 0.2], [[0.5], [0.6]], [1.5])


def _spurious_case(rng, N=6000):
    """Two 3-class tasks, strongly correlated under p (y0 = y1 with probability 0.9). The α = 0
    predictor leans on that correlation: right on the common (y0 = y1) patterns, often wrong on
    the rare ones; larger α trades common-pattern accuracy (0.95 − 0.4α²) for rare-pattern
    accuracy (0.3 + 0.6α), as GMTL does. Under a fraction r of rare patterns the best α is
    0.75·r/(1 − r), so it grows as q moves weight to the patterns p makes rare."""
    p = np.full((3, 3), 0.1 / 6)
    np.fill_diagonal(p, 0.3)
    flat = rng.choice(9, size=N, p=p.reshape(-1))
    labels = np.stack(np.unravel_index(flat, (3, 3)), axis=1).astype(np.int64)
    alphas = np.round(np.linspace(0, 1, 11), 10)
    common = labels[:, 0] == labels[:, 1]
    u = rng.random(N)
    preds = []
    for a in alphas:
        right = np.where(common, u < 0.95 - 0.4 * a**2, u < 0.3 + 0.6 * a)
        main = np.where(right, labels[:, 0], (labels[:, 0] + 1) % 3)
        preds.append(np.stack([main, labels[:, 1]], axis=1))
    labels[rng.random(N) < 0.1, 0] = -1  # 10 % of main-task labels missing
    labels[rng.random(N) < 0.1, 1] = -1
    return labels, np.stack(preds), p, alphas


def test_constructed_case_gives_monotone_optimal_alpha():
    labels, preds, p, alphas = _spurious_case(np.random.default_rng(0))
    draws = evaluate_shift(labels, preds, np.log(p), alphas, n_draws=400, seed=0, chunk_size=64)
    res = analyze(draws)
    full = res.counts > 0
    opt = res.optimal_alpha[full]
    assert full.all(), res.counts
    assert np.all(np.diff(opt) <= 0), opt  # increasing τ (milder shift) ⇒ smaller optimal α
    assert opt[0] == 1.0 and opt[-1] <= 0.2
    assert res.correlation < -0.8
    assert np.all(np.diff(res.gain) < 0), res.gain  # the gain shrinks as the shift gets milder
    assert np.all(res.gain >= 0)


def test_evaluate_shift_matches_building_blocks_and_is_chunk_invariant():
    labels, preds, p, alphas = _spurious_case(np.random.default_rng(1), N=500)
    a = evaluate_shift(labels, preds, np.log(p), alphas, n_draws=30, seed=3, chunk_size=7)
    b = evaluate_shift(labels, preds, np.log(p), alphas, n_draws=30, seed=3, chunk_size=30)
    np.testing.assert_array_equal(a.tau, b.tau)
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1e-14)
    q = sample_q(np.log(p), 30, seed=3)
    np.testing.assert_allclose(a.tau, severity(np.log(p), q), atol=1e-14)
    np.testing.assert_allclose(a.accuracy, importance_accuracy(labels, preds, p, q.q), atol=1e-12)
    np.testing.assert_allclose(a.params["sd"], q.params["sd"])
    # pooling seeds by concatenating examples
    c = evaluate_shift([labels, labels], [preds, preds], np.log(p), alphas, n_draws=30, seed=3)
    np.testing.assert_allclose(c.accuracy, a.accuracy, atol=1e-12)  # duplicated data: same weights
    assert c.meta["n_examples"] == 2 * len(labels)


def test_evaluate_shift_bad_input():
    labels, preds, p, alphas = _spurious_case(np.random.default_rng(2), N=50)
    lp = np.log(p)
    with pytest.raises(ValueError, match="n_draws must be an int >= 2"):
        evaluate_shift(labels, preds, lp, alphas, n_draws=1)
    with pytest.raises(ValueError, match="11 α slices but alphas has 3"):
        evaluate_shift(labels, preds, lp, alphas[:3], n_draws=4)
    with pytest.raises(ValueError, match="N = 49 examples but labels has N = 50"):
        evaluate_shift(labels, preds[:, :49], lp, alphas, n_draws=4)
    with pytest.raises(ValueError, match="log_p has 9 joint classes but n_classes"):
        evaluate_shift(labels, preds, lp, alphas, n_classes=(2, 3), n_draws=4)


@pytest.mark.parametrize(
    "module",
    ["sample", "severity", "importance", "analysis", "evaluate", "__init__"],
)
def test_docstring_examples_run(module):
    name = "causalmtl.shift" if module == "__init__" else f"causalmtl.shift.{module}"
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
