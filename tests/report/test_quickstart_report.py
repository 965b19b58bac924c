"""`causalmtl run` (quickstart at the tiny preset) end to end, and the report built from the DB."""

import re
import sqlite3

import pytest

from causalmtl.cli import main


@pytest.fixture(scope="module")
def quickstart_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    code = main(["run", "--preset", "tiny", "--out", str(out)])  # no experiment name: quickstart
    assert code == 0
    return out


def test_runs_recorded(quickstart_dir):
    con = sqlite3.connect(quickstart_dir / "results.sqlite")
    rows = con.execute("SELECT run_key, status FROM runs WHERE experiment='quickstart'").fetchall()
    keys = {k for k, _ in rows}
    assert {s for _, s in rows} == {"done"}
    for m in ("stl", "shared", "mmoe", "mtcrl"):
        assert f"gmtl/{m}/trial=0" in keys
    for m in ("stl", "mtl", "mtcrl"):
        assert f"mtcrl/{m}/trial=0" in keys
    names = {n for (n,) in con.execute("SELECT DISTINCT name FROM metrics")}
    assert {"acc", "acc_mean", "tau_alpha_corr", "gmtl_gain_mean", "rho_spur", "acc_id_alpha0"} <= names
    # accuracies are probabilities; rho_spur a share
    lo, hi = con.execute("SELECT MIN(value), MAX(value) FROM metrics WHERE name IN ('acc', 'rho_spur')").fetchone()
    assert 0.0 <= lo and hi <= 1.0
    assert (quickstart_dir / "configs" / "quickstart.yaml").exists()


def test_report_has_every_section(quickstart_dir):
    html = (quickstart_dir / "report.html").read_text()
    md = (quickstart_dir / "report.md").read_text()
    for text in ("At a glance", "Part 1", "Part 2", "In-distribution test accuracy", "Per-bin optimal α",
                 "GMTL findings", "Relative improvement over MTL", "Learned task-to-module graph",
                 "-0.847", "0.912"):
        assert text in html, text
        assert text in md, text
    assert len(re.findall(r"src='data:image/png;base64,", html)) >= 3  # self-contained figures
    figs = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert len(figs) >= 3
    for f in figs:
        assert (quickstart_dir / f).stat().st_size > 1000


def test_report_rebuilds_from_database_only(quickstart_dir, capsys):
    (quickstart_dir / "report.html").unlink()
    assert main(["report", str(quickstart_dir)]) == 0
    assert "Part 2" in (quickstart_dir / "report.html").read_text()


def test_rerun_skips_finished_runs(quickstart_dir):
    con = sqlite3.connect(quickstart_dir / "results.sqlite")
    before = con.execute("SELECT COUNT(*), SUM(attempts) FROM runs").fetchone()
    assert main(["run", "quickstart", "--preset", "tiny", "--out", str(quickstart_dir), "--no-report"]) == 0
    assert con.execute("SELECT COUNT(*), SUM(attempts) FROM runs").fetchone() == before


def test_cli_errors_are_clear(quickstart_dir, capsys):
    assert main(["run", "nope", "--out", str(quickstart_dir)]) == 2
    assert "valid experiments are" in capsys.readouterr().err
    assert main(["run", "--preset", "tiny", "--set", "train.epoch=3", "--out", str(quickstart_dir)]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "train.epochs" in err
    assert main(["run", "--preset", "tiny", "--set", "n_draws=many", "--out", str(quickstart_dir)]) == 2
    assert "n_draws" in capsys.readouterr().err
    assert main(["run", "--preset", "tiny", "--set", "n_draws=7", "--out", str(quickstart_dir)]) == 2
    err = capsys.readouterr().err
    assert "n_draws: 20 -> 7" in err and "--force" in err
    assert main(["report", str(quickstart_dir / "nothing-here")]) == 2


def test_list_shows_experiments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "(default)" in out
