"""Every named experiment runs at its tiny preset (seconds) and produces its report section."""

import sqlite3

import pytest

from causalmtl.experiments import build_report, registry, run_experiment
from causalmtl.experiments.registry import MissingDataError

BUILTIN = [n for n in registry.names() if n not in ("quickstart", "toy-sweep", "gmtl-aop", "gmtl-taskonomy")
           and registry.get(n).module != "causalmtl.experiments.builtin.dense_benchmarks"]
# quickstart: tests/report; gmtl-aop / gmtl-taskonomy: test_gmtl_images.py; nyuv2 / cityscapes / taskonomy:
# test_dense_benchmarks.py (their tiny presets run on synthetic copies)

#: text each experiment's section must contain (its tables / paper comparisons)
EXPECT = {
    "gmtl-toy": ["Figure 2", "range of the GMTL boundary", "GMTL accuracy of Y"],
    "gmtl-shift": ["Per-bin optimal α", "-0.847", "all methods pooled"],
    "multi-sem": ["Table 1", "Table 5", "0.906"],
    "mtcrl-digits": ["Table 6", "Table 2", "Table 3", "Table 11", "Figure 4", "0.912", "MTL (shared-bottom)",
                     "MTL (MMoE, K = MT-CRL", "MTL row"],
}


def test_builtins_are_registered():
    for name in ("quickstart", "gmtl-toy", "gmtl-shift", "multi-sem", "mtcrl-digits"):
        exp = registry.get(name)
        assert exp.description and exp.expected_seconds > 0 and "tiny" in exp.presets


@pytest.mark.parametrize("name", BUILTIN)
def test_named_experiment_tiny(name, tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    exp = registry.get(name)
    try:
        if exp.check_data is not None:
            exp.check_data(registry.get(name).config_cls())
    except MissingDataError as exc:  # needs files that tests do not have: the error must say which
        msg = str(exc)
        assert len(msg) > 20 and ("CAUSALMTL_DATA" in msg or "/" in msg), msg
        with pytest.raises(MissingDataError):
            run_experiment(name, preset="tiny", out=tmp_path)
        return
    summary = run_experiment(name, preset="tiny", out=tmp_path)
    assert summary.complete, summary
    build_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert f"id='{name}'" in html
    assert "The report of" not in html  # the section's own report function ran without error
    for text in EXPECT.get(name, []):
        assert text in html, (name, text)
    con = sqlite3.connect(tmp_path / "results.sqlite")
    n_runs, n_metrics = con.execute(
        "SELECT COUNT(DISTINCT r.id), COUNT(*) FROM runs r JOIN metrics m ON m.run_id = r.id"
    ).fetchone()
    assert n_runs == sum(summary.counts.values()) and n_metrics > n_runs


def test_gmtl_shift_on_a_user_table(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 600
    y1 = rng.integers(0, 2, n)
    y2 = np.where(rng.random(n) < 0.8, y1, rng.integers(0, 3, n))  # confounded labels
    x = rng.normal(size=(n, 3)) + np.stack([y1, y2, y1 - y2], 1)
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(hat=y1, coat=y2)
    df.to_csv(tmp_path / "t.csv", index=False)
    s = run_experiment("gmtl-shift", ["dataset=table", f"table_path={tmp_path / 't.csv'}",
                                      "table_labels=[hat,coat]", "methods=[nps,fps]"],
                       preset="tiny", out=tmp_path / "out")
    assert s.complete and s.counts == {"done": 2}
    con = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    tasks = {t for (t,) in con.execute("SELECT DISTINCT task FROM metrics WHERE name='tau_alpha_corr'")}
    assert tasks == {"hat", "coat"}
    with pytest.raises(ValueError, match="table_labels"):
        run_experiment("gmtl-shift", ["dataset=table"], preset="tiny", out=tmp_path / "bad")
    with pytest.raises(MissingDataError, match="not a file"):
        run_experiment("gmtl-shift", ["dataset=table", "table_path=/no/such.csv", "table_labels=[a,b]"],
                       preset="tiny", out=tmp_path / "bad")


def test_old_module_paths_do_not_register_twice():
    """``causalmtl.experiments.quickstart`` (before the move to ``builtin/``) is the same module
    object, so importing it runs no registration again: every Experiment stays the same object."""
    import importlib
    import subprocess
    import sys

    from causalmtl._moved import MOVED

    before = {e.name: e for e in registry.all_experiments()}
    old_paths = [o for o, n in MOVED.items() if n.startswith("causalmtl.experiments.builtin.")]
    assert len(old_paths) == len(registry.BUILTIN_MODULES)
    for old in old_paths:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match="moved to causalmtl.experiments.builtin."):
            assert importlib.import_module(old) is sys.modules[MOVED[old]]
    after = {e.name: e for e in registry.all_experiments()}
    assert after.keys() == before.keys() and all(after[n] is before[n] for n in before)
    # imported by its old path first, then through the registry: one module, registered once
    code = ("import sys, causalmtl.experiments.quickstart as q\n"
            "from causalmtl.experiments import registry\n"
            "assert registry.get('quickstart').module == 'causalmtl.experiments.builtin.quickstart'\n"
            "assert q is sys.modules['causalmtl.experiments.builtin.quickstart']\n"
            "assert registry.names().count('quickstart') == 1\n")
    subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code], check=True)
