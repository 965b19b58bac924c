from causalmtl.cli import main
from causalmtl.gmtl.demo import run_demo


def test_demo_gmtl_beats_dmtl_under_reversed_correlation():
    res = run_demo(cov_train=0.2, cov_test=-0.2, n_train=4000, n_test=4000, seed=1)
    t = res.table
    # the correlation flips at test: removing the training prior must help the weaker task
    assert t.loc["GMTL alpha=1", "accuracy Y'"] > t.loc["DMTL (alpha=0)", "accuracy Y'"] + 0.1
    assert t.loc["GMTL known q", "accuracy Y'"] >= t.loc["GMTL alpha=1", "accuracy Y'"]


def test_demo_without_shift_dmtl_is_not_worse():
    t = run_demo(cov_train=0.2, cov_test=0.2, n_train=4000, n_test=4000, seed=2).table
    assert t.loc["DMTL (alpha=0)", "accuracy Y'"] >= t.loc["GMTL alpha=1", "accuracy Y'"] - 0.01


def test_demo_command_prints_table(capsys):
    assert main(["demo", "--n", "1000", "--alphas", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "DMTL (alpha=0)" in out and "GMTL alpha=1" in out and "GMTL known q" in out


def test_demo_command_bad_covariance_is_a_clear_error(capsys):
    assert main(["demo", "--cov-test", "0.4"]) == 2
    assert "error" in capsys.readouterr().err
