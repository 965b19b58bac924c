"""Bring-your-own table from CSV / Parquet: round trip, missing labels, splits, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalmtl.data import load_table


def frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n).astype(float)
    a[::7] = np.nan  # missing labels
    return pd.DataFrame(
        {
            "x1": rng.standard_normal(n),
            "x2": rng.standard_normal(n),
            "a": a,
            "b": rng.integers(0, 3, n),
            "score": rng.standard_normal(n),
            "part": np.array(["train", "valid", "test", "train", "Train"] * (n // 5)),
        }
    )


def test_csv_round_trip_with_split_column(tmp_path):
    df = frame()
    path = tmp_path / "mine.csv"
    df.to_csv(path, index=False)
    splits = load_table(path, labels=["a", "b"], features=["x1", "x2"], n_classes={"b": 4}, split_column="part")
    assert splits.name == "mine"
    assert splits.train.n_classes == (2, 4)
    rows = splits.meta["row_index"]
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(50))
    np.testing.assert_array_equal(rows["train"], np.flatnonzero(df["part"].str.lower() == "train"))
    tr = splits.train
    np.testing.assert_allclose(tr.inputs, df.loc[rows["train"], ["x1", "x2"]].to_numpy(), rtol=1e-6)
    expect_a = df.loc[rows["train"], "a"].fillna(-1).to_numpy().astype(int)
    np.testing.assert_array_equal(tr.labels[:, 0], expect_a)
    assert (tr.labels[:, 0] == -1).any()
    assert [int(s.env[0]) for _, s in splits] == [0, 1, 2]
    # joint table counts fully-labelled rows only
    full = tr.labels[(tr.labels >= 0).all(1)]
    brute = np.zeros((2, 4))
    np.add.at(brute, (full[:, 0], full[:, 1]), 1)
    np.testing.assert_allclose(splits.joint_tables()["train"], brute / brute.sum())


def test_parquet_and_random_split_and_regression(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs the optional extra causalmtl[parquet]")
    df = frame().drop(columns="part")
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    s1 = load_table(path, labels=["a", "b", "score"], regression=["score"], seed=3)
    s2 = load_table(path, labels=["a", "b", "score"], regression=["score"], seed=3)
    assert s1.meta["feature_names"] == ["x1", "x2"]
    assert [len(s) for _, s in s1] == [30, 10, 10]
    np.testing.assert_array_equal(s1.meta["row_index"]["test"], s2.meta["row_index"]["test"])
    assert s1.train.tasks[2].kind == "regression"
    assert s1.train.targets.dtype == np.float64
    assert np.isnan(s1.train.targets[:, 0]).any()  # missing classification label is NaN here
    np.testing.assert_array_equal(s1.train.labels[:, 1], df["b"].to_numpy()[s1.meta["row_index"]["train"]])


def test_env_column():
    df = frame()
    df["site"] = np.arange(50) % 4
    s = load_table(df, labels=["a", "b"], features=["x1"], env_column="site", split_column="part")
    np.testing.assert_array_equal(s.train.env, df["site"].to_numpy()[s.meta["row_index"]["train"]])


def test_bad_inputs(tmp_path):
    df = frame()
    with pytest.raises(ValueError, match=r"label column 'b', row \d+: value 2 is outside the declared classes \[0, 2\)"):
        load_table(df, labels=["a", "b"], features=["x1"], n_classes={"b": 2})
    bad = df.copy()
    bad["a"] = bad["a"].astype(object)
    bad.loc[3, "a"] = "yes"
    with pytest.raises(ValueError, match=r"label column 'a', row 3: value 'yes' is not an integer class label"):
        load_table(bad, labels=["a"], features=["x1"])
    bad = df.copy()
    bad.loc[5, "a"] = 0.5
    with pytest.raises(ValueError, match=r"row 5: value 0.5 is not an integer"):
        load_table(bad, labels=["a"], features=["x1"])
    bad = df.copy()
    bad.loc[2, "b"] = -3
    with pytest.raises(ValueError, match="value -3 is outside"):
        load_table(bad, labels=["b"], features=["x1"])
    with pytest.raises(ValueError, match=r"label column\(s\) \['zz'\] not in the table"):
        load_table(df, labels=["zz"])
    bad = df.copy()
    bad.loc[4, "x2"] = np.nan
    with pytest.raises(ValueError, match=r"feature column 'x2', row 4"):
        load_table(bad, labels=["a"], features=["x1", "x2"])
    with pytest.raises(ValueError, match="feature column 'part'"):
        load_table(df, labels=["a"])  # the string column would be a feature
    bad = df.copy()
    bad.loc[1, "part"] = "holdout"
    with pytest.raises(ValueError, match=r"split column 'part', row 1: value 'holdout'"):
        load_table(bad, labels=["a"], features=["x1"], split_column="part")
    with pytest.raises(ValueError, match="split_fractions"):
        load_table(df, labels=["a"], features=["x1"], split_fractions=(0.5, 0.5, 0.5))
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(ValueError, match="unknown table format"):
        load_table(tmp_path / "t.xlsx", labels=["a"])
    with pytest.raises(FileNotFoundError):
        load_table(tmp_path / "nope.csv", labels=["a"])
