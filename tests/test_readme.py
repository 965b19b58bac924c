"""The README's setup commands (its Python blocks run, each alone, in test_docs_examples.py)."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_setup_commands():
    lines = README.read_text().splitlines()
    cmds = [ln for ln in lines[:12] if ln.startswith("bash scripts/setup.sh")]
    assert len(cmds) == 2
    assert "causalmtl run" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    readme_cmd = [ln for ln in README.read_text().splitlines() if "pytest" in ln][0]
    test_cmd = readme_cmd.split("#")[0].strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_cmd in ci
