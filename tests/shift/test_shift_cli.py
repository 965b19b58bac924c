"""`causalmtl shift`: the npz bundle, the GMTL layout, outputs, figures and bad input."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
import torch

from causalmtl.cli import main
from causalmtl.gmtl import JointPrior, gmtl_decode
from causalmtl.shift import (
    ShiftDraws,
    analyze,
    evaluate_shift,
    load_bundles,
    plot_accuracy_vs_alpha,
    plot_figure3,
)

ALPHAS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]


def _seed_data(rng, N=300, n_classes=(4, 3)):
    labels = np.stack([rng.integers(0, c, N) for c in n_classes], axis=1).astype(np.int64)
    labels[rng.random(N) < 0.1, 0] = -1
    labels[rng.random(N) < 0.2, 1] = -1
    preds = [np.where(rng.random((N, 2)) < 0.6, np.maximum(labels, 0), 0) for _ in range(11)]
    return labels, np.stack(preds).astype(np.int64)


@pytest.fixture
def gmtl_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "gmtl"
    seeds = []
    for i in range(2):
        d = root / f"s={i}"
        d.mkdir(parents=True)
        labels, preds = _seed_data(rng)
        with open(d / "y_pred_None.pkl", "wb") as fh:
            pickle.dump((labels, preds[0]), fh)
        for a, pr in zip(ALPHAS, preds[1:]):
            with open(d / f"y_pred_{a}.pkl", "wb") as fh:
                pickle.dump((labels, pr), fh)
        seeds.append((labels, preds))
    log_prior = torch.log(torch.tensor(rng.dirichlet(np.ones(12)))) + 3.0  # unnormalised
    torch.save(log_prior, tmp_path / "log_prior.pt")
    return root, tmp_path / "log_prior.pt", seeds, log_prior.numpy()


def test_gmtl_layout_writes_draws_csv_matching_the_library(gmtl_dir, tmp_path, capsys):
    root, prior_file, seeds, log_prior = gmtl_dir
    out = tmp_path / "out"
    rc = main([
        "shift", "--gmtl-dir", str(root), "--log-prior", str(prior_file), "--n-classes", "4", "3",
        "--main-task", "0", "--n-seeds", "2", "--alphas", *ALPHAS, "--draws", "40", "--seed", "0",
        "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert rc == 0
    with open(out / "draws.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["tau", "acc_0.0", *[f"acc_{a}" for a in ALPHAS]]
    table = np.array(rows[1:], dtype=float)
    assert table.shape == (40, 12)
    expected = evaluate_shift(
        [s[0] for s in seeds], [s[1] for s in seeds], log_prior, [0.0, *map(float, ALPHAS)],
        n_classes=(4, 3), n_draws=40, seed=0,
    )  # fmt: skip
    np.testing.assert_array_equal(table[:, 0], expected.tau)
    np.testing.assert_allclose(table[:, 1:], expected.accuracy, atol=1e-15)
    report = json.loads((out / "analysis.json").read_text())
    assert report["inputs"]["n_examples"] == 600
    assert report["analysis"]["optimal_alpha"] == pytest.approx(
        analyze(expected).optimal_alpha.tolist()
    )
    assert (out / "figure3.png").stat().st_size > 10_000
    assert (out / "accuracy_vs_alpha.png").stat().st_size > 10_000
    assert (out / "bins.csv").is_file()
    assert "Pearson r" in capsys.readouterr().out


def test_gmtl_layout_bad_input(gmtl_dir, tmp_path, capsys):
    root, prior_file, _, _ = gmtl_dir
    base = ["shift", "--gmtl-dir", str(root), "--log-prior", str(prior_file), "--n-seeds", "2",
            "--out", str(tmp_path / "o"), "--no-progress", "--no-figures", "--draws", "5"]  # fmt: skip
    assert main([*base, "--n-classes", "4", "3", "--alphas", "0.15"]) == 2
    err = capsys.readouterr().err
    assert "alpha 0.15 has no prediction file" in err and "'0.1'" in err
    assert main([*base, "--n-classes", "4", "4", "--alphas", "0.1"]) == 2
    assert "12 entries but n_classes gives K = 16" in capsys.readouterr().err
    assert main([*base, "--n-classes", "3", "3", "--alphas", "0.1"]) == 2
    assert "outside [-1, 3)" in capsys.readouterr().err
    assert main([*base, "--n-seeds", "3", "--n-classes", "4", "3", "--alphas", "0.1"]) == 2
    assert "seed 2 of --n-seeds 3" in capsys.readouterr().err
    assert main([*base, "--n-classes", "4", "3", "--alphas", "0.1", "--draws", "1"]) == 2
    assert "--draws must be >= 2" in capsys.readouterr().err
    # labels of an alpha file that disagree with y_pred_None.pkl
    labels, pred = pickle.load(open(root / "s=0" / "y_pred_0.1.pkl", "rb"))
    labels = labels.copy()
    labels[0, 0] = (labels[0, 0] + 1) % 4
    pickle.dump((labels, pred), open(root / "s=0" / "y_pred_0.1.pkl", "wb"))
    assert main([*base, "--n-classes", "4", "3", "--alphas", "0.1"]) == 2
    assert "labels differ" in capsys.readouterr().err
    pickle.dump((labels, pred[:10]), open(root / "s=0" / "y_pred_0.1.pkl", "wb"))
    assert main([*base, "--n-classes", "4", "3", "--alphas", "0.1"]) == 2
    assert (
        "predictions have shape (10, 2) but labels have shape (300, 2)" in capsys.readouterr().err
    )


def test_bundle_with_predictions(tmp_path):
    rng = np.random.default_rng(1)
    labels, preds = _seed_data(rng)
    prior = rng.dirichlet(np.ones(12)).reshape(4, 3)
    alphas = np.round(np.linspace(0, 1, 11), 10)
    np.savez(tmp_path / "b.npz", labels=labels, predictions=preds, alphas=alphas, prior=prior)
    out = tmp_path / "out"
    rc = main(["shift", "--bundle", str(tmp_path / "b.npz"), "--draws", "20", "--out", str(out),
               "--no-progress", "--no-figures", "--tau-variant", "shieh"])  # fmt: skip
    assert rc == 0
    got = ShiftDraws.read_csv(out / "draws.csv")
    ref = evaluate_shift(labels, preds, np.log(prior), alphas, n_draws=20, tau_variant="shieh")
    np.testing.assert_array_equal(got.tau, ref.tau)
    np.testing.assert_allclose(got.accuracy, ref.accuracy, atol=1e-15)
    # a subset of alphas, and two bundles pooled
    sub = load_bundles([tmp_path / "b.npz", tmp_path / "b.npz"], alphas=[0.0, 0.5])
    assert sub.predictions.shape == (2, 600, 2)
    np.testing.assert_array_equal(sub.predictions[1, :300], preds[5])
    with pytest.raises(ValueError, match=r"alphas \[0.55\] were requested"):
        load_bundles([tmp_path / "b.npz"], alphas=[0.55])


def test_bundle_with_log_probs_decodes_with_gmtl(tmp_path):
    rng = np.random.default_rng(2)
    N = 200
    labels = np.stack([rng.integers(0, 3, N), rng.integers(0, 2, N)], axis=1)
    logits = [rng.normal(size=(N, 3)), rng.normal(size=(N, 2))]
    log_probs = [x - np.log(np.exp(x).sum(axis=1, keepdims=True)) for x in logits]
    prior = JointPrior.fit(labels, (3, 2), pseudocount=1.0)
    test_prior = rng.dirichlet(np.ones(6)).reshape(3, 2)
    np.savez(tmp_path / "lp.npz", labels=labels, log_probs_0=log_probs[0], log_probs_1=log_probs[1],
             prior=prior.probs, test_prior=test_prior)  # fmt: skip
    inputs = load_bundles([tmp_path / "lp.npz"], alphas=[0.0, 0.5, 1.0])
    np.testing.assert_array_equal(
        inputs.predictions, gmtl_decode(log_probs, prior, alpha=[0.0, 0.5, 1.0]).labels
    )
    np.testing.assert_allclose(np.exp(inputs.log_p), test_prior.reshape(-1), atol=1e-12)
    np.savez(tmp_path / "noprior.npz", labels=labels, log_probs_0=log_probs[0], log_probs_1=log_probs[1],
             n_classes=np.array([3, 2]))  # fmt: skip
    with pytest.raises(ValueError, match="needs the joint 'prior'"):
        load_bundles([tmp_path / "noprior.npz"])


def test_bundle_bad_input(tmp_path, capsys):
    labels = np.array([[0, 1], [1, 0], [2, 1]])
    prior = np.full((3, 2), 1 / 6)
    np.savez(tmp_path / "n.npz", labels=labels, predictions=np.zeros((2, 4, 2), dtype=int),
             alphas=[0.0, 1.0], prior=prior)  # fmt: skip
    with pytest.raises(ValueError, match="N = 4 examples but labels has N = 3"):
        load_bundles([tmp_path / "n.npz"])
    np.savez(tmp_path / "t.npz", labels=labels, predictions=np.zeros((2, 3, 3), dtype=int),
             alphas=[0.0, 1.0], prior=prior)  # fmt: skip
    with pytest.raises(ValueError, match="T = 3 tasks but labels has T = 2"):
        load_bundles([tmp_path / "t.npz"])
    np.savez(tmp_path / "p.npz", labels=labels, predictions=np.zeros((2, 3, 2), dtype=int),
             alphas=[0.0, 1.0], log_prior=np.zeros(7), n_classes=[3, 2])  # fmt: skip
    with pytest.raises(ValueError, match="7 entries but n_classes gives K = 6"):
        load_bundles([tmp_path / "p.npz"])
    np.savez(tmp_path / "a.npz", labels=labels, predictions=np.zeros((2, 3, 2), dtype=int),
             alphas=[0.0, 0.5, 1.0], prior=prior)  # fmt: skip
    with pytest.raises(ValueError, match="alphas has 3 values"):
        load_bundles([tmp_path / "a.npz"])
    np.savez(tmp_path / "r.npz", labels=np.array([[0, 1], [3, 0], [2, 1]]),
             predictions=np.zeros((2, 3, 2), dtype=int), alphas=[0.0, 1.0], prior=prior)  # fmt: skip
    with pytest.raises(ValueError, match=r"labels\[1, 0\] = 3 is outside"):
        load_bundles([tmp_path / "r.npz"])
    assert main(["shift", "--out", str(tmp_path / "o")]) == 2
    assert "give exactly one input" in capsys.readouterr().err


def test_figures_are_written_and_labelled(tmp_path):
    tau = np.linspace(-0.9, 0.9, 50)
    alphas = np.round(np.linspace(0, 1, 11), 10)
    acc = 0.8 - (alphas[None, :] - (1 - tau[:, None]) / 2) ** 2
    res = analyze(ShiftDraws(tau, acc, alphas))
    fig = plot_figure3(res, tmp_path / "f3.png")
    left, right = fig.axes
    assert left.get_ylabel() == "optimal α" and "percentage points" in right.get_ylabel()
    assert "τ" in left.get_xlabel()
    # mildest bin (highest τ) is plotted first: optimal α rises left to right
    y = left.lines[0].get_ydata()
    assert np.all(np.diff(y) > 0)
    fig2 = plot_accuracy_vs_alpha(res, tmp_path / "acc.png")
    assert len(fig2.axes[0].get_legend().get_texts()) == 5
    assert (tmp_path / "f3.png").stat().st_size > 10_000 and (
        tmp_path / "acc.png"
    ).stat().st_size > 10_000
    overlay = plot_figure3({"NPS": res, "STN": res})
    assert len(overlay.axes[0].lines) == 2
    with pytest.raises(ValueError, match="ShiftAnalysis"):
        plot_figure3([res])


def test_dirichlet_protocol_through_the_command(tmp_path, capsys):
    rng = np.random.default_rng(3)
    labels, preds = _seed_data(rng)
    prior = rng.dirichlet(np.ones(12)).reshape(4, 3)
    alphas = np.round(np.linspace(0, 1, 11), 10)
    np.savez(tmp_path / "b.npz", labels=labels, predictions=preds, alphas=alphas, prior=prior)
    out = tmp_path / "out"
    args = ["shift", "--bundle", str(tmp_path / "b.npz"), "--draws", "12", "--out", str(out),
            "--no-progress", "--no-figures", "--protocol", "dirichlet", "--seed", "4"]  # fmt: skip
    assert main([*args, "--concentration", "2", "50", "--alphas", "0", "0.5", "1"]) == 0
    report = json.loads((out / "analysis.json").read_text())
    assert report["config"]["protocol"] == "dirichlet"
    assert report["config"]["concentration"] == [2.0, 50.0]
    got = ShiftDraws.read_csv(out / "draws.csv")
    from causalmtl.shift import DirichletSampler

    ref = evaluate_shift(
        labels, preds[[0, 5, 10]], np.log(prior), [0.0, 0.5, 1.0], n_draws=12, seed=4,
        sampler=DirichletSampler((2.0, 50.0)),
    )  # fmt: skip
    np.testing.assert_allclose(got.accuracy, ref.accuracy, atol=1e-15)
    capsys.readouterr()
    assert main([*args, "--alphas", "half"]) == 2
    assert "--alphas must be numbers" in capsys.readouterr().err
    assert main([*args, "--concentration", "1", "2", "3"]) == 2
    assert "--concentration takes one value or LOW HIGH" in capsys.readouterr().err
