import subprocess
import sys

import causalmtl
from causalmtl.cli import build_parser, main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert causalmtl.__version__ in capsys.readouterr().out


def test_help_lists_subcommands():
    text = build_parser().format_help()
    assert "COMMAND" in text


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "causalmtl.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert causalmtl.__version__ in out.stdout
