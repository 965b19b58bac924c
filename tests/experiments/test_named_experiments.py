"""Every named experiment runs at its tiny preset (seconds) and produces its report section."""

import sqlite3

import pytest

from causalmtl.experiments import registry, run_experiment
from causalmtl.experiments.registry import MissingDataError
from causalmtl.report.build import build_report

BUILTIN = [n for n in registry.names() if n not in ("quickstart", "toy-sweep")]  # quickstart: tests/report

#: text each experiment's section must contain (its tables / paper comparisons)
EXPECT = {
    "gmtl-toy": ["Figure 2", "range of the GMTL boundary", "GMTL accuracy of Y"],
    "gmtl-shift": ["Per-bin optimal α", "-0.847", "all methods pooled"],
    "multi-sem": ["Table 1", "Table 5", "0.906"],
    "mtcrl-digits": ["Table 6", "Table 2", "Table 3", "Table 11", "Figure 4", "0.912"],
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
