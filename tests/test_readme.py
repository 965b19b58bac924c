"""The README's Python examples run as written (in order, in one namespace)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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


def test_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "(4, 2) (3, 4, 2) (4, 2)" in out
