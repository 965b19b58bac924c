"""The ``unknown-q`` experiment: plan, config checks and a run on a user's table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalmtl.experiments.builtin.unknown_q import UnknownQConfig, plan, run
from causalmtl.experiments.registry import RunContext


def test_plan_covers_every_combination() -> None:
    cfg = UnknownQConfig(datasets=["simulated", "digits"], shifts=["flip", "none"], methods=["score"])
    keys = [s.run_key for s in plan(cfg)]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert "data=digits/shift=none/method=score" in keys


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"datasets": ["mnist"]}, "datasets has unknown"),
        ({"methods": ["oracle"]}, "methods has unknown"),
        ({"n_unlabeled": 3}, "n_unlabeled must be >= 10"),
        ({"smoothing": "lots"}, "smoothing must be"),
        ({"datasets": ["table"]}, "needs table_path"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan(UnknownQConfig(**kwargs))


def test_run_on_a_user_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.85, a, 1 - a)  # strongly correlated labels
    df = pd.DataFrame({"f1": a + rng.normal(0, 0.8, n), "f2": b + rng.normal(0, 0.8, n),
                       "f3": rng.normal(size=n), "a": a, "b": b})  # fmt: skip
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    cfg = UnknownQConfig(datasets=["table"], shifts=["flip"], methods=["score"], n_pairs=1,
                         table_path=str(path), table_labels=["a", "b"], n_unlabeled=500)  # fmt: skip
    (spec,) = plan(cfg)
    res = run(cfg, spec, RunContext(run_id=1, seed=0, device="cpu", artefact_dir=tmp_path))
    m = {r.name: r.value for r in res.metrics}
    assert m["acc_oracle_q"] > m["acc_dmtl"]  # flipping the correlation hurts DMTL
    assert m["acc_est_q"] > m["acc_dmtl"] and m["l1"] < m["l1_prior"]
    assert res.info["n_classes"] == [2, 2]


def test_run_with_cv_smoothing_reports_the_guard(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.85, a, 1 - a)
    df = pd.DataFrame({"f1": a + rng.normal(0, 0.8, n), "f2": b + rng.normal(0, 0.8, n), "a": a, "b": b})
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    cfg = UnknownQConfig(datasets=["table"], shifts=["flip"], methods=["score"], n_pairs=1, smoothing="cv",
                         table_path=str(path), table_labels=["a", "b"], n_unlabeled=500)  # fmt: skip
    (spec,) = plan(cfg)
    res = run(cfg, spec, RunContext(run_id=1, seed=0, device="cpu", artefact_dir=tmp_path))
    m = {r.name: r.value for r in res.metrics}
    assert m["fallback"] == 0.0 and 0 < m["cv_ratio"] < np.inf and m["cv_z"] > 3
    assert m["acc_est_q"] > m["acc_dmtl"]
