"""Predictions written in the GMTL authors' layout read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from causalmtl.shift.files import load_gmtl_dir, write_gmtl_dir


def test_written_gmtl_layout_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(20, 2))
    labels[0, 1] = -1
    alphas = [0.0, 0.5, 1.0]
    preds = rng.integers(0, 3, size=(3, 20, 2))
    log_p = np.log(rng.dirichlet(np.ones(9)))
    for s in range(2):
        write_gmtl_dir(tmp_path, s, labels, preds, alphas, log_prior=log_p if s == 0 else None)
    assert sorted(p.name for p in (tmp_path / "s=0").iterdir()) == [
        "y_pred_0.5.pkl", "y_pred_1.0.pkl", "y_pred_None.pkl"]
    got = load_gmtl_dir(tmp_path, tmp_path / "log_prior.pt", (3, 3), n_seeds=2, alphas=["0.5", "1"])
    assert np.array_equal(got.alphas, alphas)
    assert np.array_equal(got.labels, np.concatenate([labels, labels]))
    assert np.array_equal(got.predictions, np.concatenate([preds, preds], axis=1))
    assert np.allclose(got.log_p, log_p)


def test_writer_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"predictions must have shape \(A, N, T\)"):
        write_gmtl_dir(tmp_path, 0, np.zeros((4, 2), int), np.zeros((2, 4, 2), int), [0.0])
