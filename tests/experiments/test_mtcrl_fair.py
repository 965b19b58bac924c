"""Issue 18: shifted environments and method hyperparameters from the command line.

* a ``multi-sem`` run with a shifted valid split records the shift (and the report says whether
  G-IRM's environments differ), ``--set method.lambda_girm=…`` reaches the method and is part
  of the run's identity;
* bad values (λ < 0, non-finite, unknown keys, m_valid outside [0, 1], bad valid_pairs) fail
  before anything runs, naming the key.
"""

from __future__ import annotations

import sqlite3

import pytest

from causalmtl.experiments import build_report, run_experiment
from causalmtl.experiments import common as common_mod

TINY = ["n_tasks=[2]", "methods=[mtcrl-var]", "data.n_train=200", "data.n_valid=100", "data.n_test=100",
        "train.epochs=1"]


def test_shifted_valid_and_method_lambda_reach_the_run(tmp_path, monkeypatch):
    seen = []
    real = common_mod.build_method

    def spy(name, model, hparams):
        seen.append(dict(hparams))
        return real(name, model, hparams)

    monkeypatch.setattr(common_mod, "build_method", spy)
    s = run_experiment("multi-sem", [*TINY, "data.m_valid=0.1", "method.lambda_girm=10"], preset="tiny",
                       out=tmp_path / "a")
    assert s.complete
    assert seen and seen[-1]["lambda_girm"] == 10.0  # the method got it
    con = sqlite3.connect(tmp_path / "a" / "results.sqlite")
    (params,) = con.execute("SELECT params FROM runs").fetchone()
    assert '"lambda_girm": 10.0' in params
    got = dict(con.execute("SELECT name, value FROM metrics WHERE name LIKE 'env%'").fetchall())
    # hub structure, T = 2: TV between m = 0.9 and m = 0.1 tables = |0.9 - 0.1| = 0.8
    assert got == {"env_shift_tv": pytest.approx(0.8), "envs_differ": 1.0}
    build_report(tmp_path / "a")
    html = (tmp_path / "a" / "report.html").read_text()
    assert "G-IRM environments differ" in html and "0.1 in valid" in html
    # no shift: m_valid defaults to m_train, and the report says so
    run_experiment("multi-sem", [*TINY, "method.lambda_girm=10"], preset="tiny", out=tmp_path / "b")
    con = sqlite3.connect(tmp_path / "b" / "results.sqlite")
    assert dict(con.execute("SELECT name, value FROM metrics WHERE name LIKE 'env%'").fetchall()) == {
        "env_shift_tv": 0.0, "envs_differ": 0.0}
    build_report(tmp_path / "b")
    assert "no shift to be invariant to" in (tmp_path / "b" / "report.html").read_text()
    # a different λ is a different configuration: the store refuses to mix it with the λ = 10 results
    from causalmtl.experiments.runner import ConfigMismatchError

    with pytest.raises(ConfigMismatchError, match="lambda_girm"):
        run_experiment("multi-sem", [*TINY, "method.lambda_girm=1"], preset="tiny", out=tmp_path / "b")


@pytest.mark.parametrize("override,match", [
    ("method.lambda_girm=-1", r"method.lambda_girm must be a finite number >= 0, got -1"),
    ("method.lambda_girm=inf", r"method.lambda_girm must be a finite number >= 0, got 'inf'"),
    ("method.lambda_girm=nan", r"method.lambda_girm must be a finite number >= 0"),
    ("method.lambda_nope=1", r"method.lambda_nope is not a hyperparameter of any of the methods.*lambda_girm"),
    ("data.m_valid=1.5", r"data.m_valid must be a label agreement in \[0, 1\], got 1.5"),
])
def test_bad_overrides_fail_before_running(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        run_experiment("multi-sem", [*TINY, override], preset="tiny", out=tmp_path)


def test_digits_valid_pairs_and_method_overrides(tmp_path):
    from causalmtl.data import make_multi_digits
    from causalmtl.experiments.common import environment_shift, method_overrides

    own = make_multi_digits("pairs", 200, 100, 100, seed=0)
    same = make_multi_digits("pairs", 200, 100, 100, seed=0, valid_pairs="train")
    tv = {r.name: r.value for r in environment_shift(own)}
    assert tv == {"env_shift_tv": 1.0, "envs_differ": 1.0}  # disjoint pair sets
    assert {r.name: r.value for r in environment_shift(same)} == {"env_shift_tv": 0.0, "envs_differ": 0.0}
    valid_pairs = {tuple(p) for p in same.valid.labels.tolist()}
    assert valid_pairs <= {tuple(p) for p in same.meta["pairs"]["train"].tolist()}
    assert not valid_pairs & {tuple(p) for p in same.meta["pairs"]["test"].tolist()}
    with pytest.raises(ValueError, match="valid_pairs must be"):
        make_multi_digits("pairs", 20, 10, 10, seed=0, valid_pairs="test")
    with pytest.raises(ValueError, match="data.valid_pairs must be"):
        run_experiment("mtcrl-digits", ["data.valid_pairs=all"], preset="tiny", out=tmp_path)
    # a key applies to the methods that have it, and only to them
    over = method_overrides(["irm", "mtcrl-var", "stl"], {"lambda": "3", "lambda_girm": 10, "estimator": "split"})
    assert over == {"irm": {"lambda": 3.0, "estimator": "split"}, "mtcrl-var": {"lambda_girm": 10.0}, "stl": {}}


@pytest.mark.filterwarnings("ignore::causalmtl.data.mnist.ChecksumWarning")
def test_mtcrl_digits_on_streamed_multi_mnist_with_a_lambda_grid(tmp_path):
    """dataset=mnist-stream: the on-the-fly Multi-MNIST through the whole experiment, LeNet
    encoders, MT-CRL once per λ of the grid (as trials), the presets valid."""
    import numpy as np

    from causalmtl.data.idx import write_idx
    from causalmtl.experiments import registry
    from causalmtl.experiments.config import build_config

    rng = np.random.default_rng(0)
    root = tmp_path / "mnist"
    root.mkdir()
    for part, n in (("train", 300), ("t10k", 100)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{part}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{part}-labels-idx1-ubyte", labels)
    s = run_experiment("mtcrl-digits", [
        "dataset=mnist-stream", f"data_dir={root}", "per_pair=2", "methods=[mtcrl-var]",
        "model.encoder=lenet", "lambda_grid=[0.1,10]", "ablations=[]", "k_values=[]", "diagnostics=false"], preset="tiny",
        out=tmp_path / "out")
    assert s.complete and s.counts == {"done": 2}
    con = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    keys = sorted(k for (k,) in con.execute("SELECT run_key FROM runs"))
    assert keys == ["table6/mtcrl-var/lambda=0.1", "table6/mtcrl-var/lambda=10"]
    lams = sorted(v for (v,) in con.execute("SELECT json_extract(params, '$.hparams.lambda_girm') FROM runs"))
    assert lams == [0.1, 10.0]
    tv = con.execute("SELECT value FROM metrics WHERE name='env_shift_tv'").fetchall()
    assert [v for (v,) in tv] == pytest.approx([1.0] * 2)  # own valid pairs: the environments differ
    exp = registry.get("mtcrl-digits")
    for preset in ("paper", "mid"):
        cfg = build_config(exp.config_cls, base=exp.presets[preset])
        assert cfg.dataset == "mnist-stream" and cfg.model.encoder == "lenet" and cfg.model.n_modules == 8
    assert build_config(exp.config_cls, base=exp.presets["paper"]).per_pair == 10_000
    with pytest.raises(ValueError, match="lambda_grid entries must be finite"):
        run_experiment("mtcrl-digits", ["lambda_grid=[-1]"], preset="tiny", out=tmp_path / "bad")
