"""The ``causalmtl data`` subcommand."""

from __future__ import annotations

import numpy as np

from causalmtl.cli import main
from causalmtl.data import decision_boundaries


def test_figure2_command(tmp_path, capsys):
    out = tmp_path / "fig2.png"
    assert main(["data", "figure2", str(out), "--points", "3"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    lines = capsys.readouterr().out.strip().splitlines()
    row = lines[-1].split()  # Cov = +0.2
    res = decision_boundaries([0.2])
    np.testing.assert_allclose([float(row[1]), float(row[2])], [res["dmtl"][0], res["gmtl"][0]], atol=1e-6)


def test_show_command_prints_tables_and_envs(capsys):
    assert main(["data", "show", "multi-digits", "--protocol", "pairs", "--n-train", "300",
                 "--n-valid", "100", "--n-test", "100"]) == 0
    out = capsys.readouterr().out
    assert "environments [0]" in out and "environments [2]" in out
    assert "empirical p(y, y') in test" in out and "(1, 8, 16)" in out


def test_show_bad_input_is_a_clear_error(capsys):
    assert main(["data", "show", "multi-sem", "--n-tasks", "9"]) == 2
    assert "n_tasks must be an int in [2, 8], got 9" in capsys.readouterr().err
