"""Every ```python block of README.md and docs/*.md runs as written, alone (issue 15).

Each block is executed by itself in a fresh namespace, with the repository root as the
working directory, under a time limit. A block must therefore be self-contained (its own
imports, random generator and data); blocks that write files send them to a scratch
directory themselves, and the test checks that no block leaves a file in the repository.

A block whose first lines carry a marker comment is *not* run:

* ``# doctest: needs-data`` — it reads a real data set (MovieLens, Multi-MNIST, a user's
  CSV) that the repository does not ship;
* ``# doctest: needs-gpu`` — it needs a CUDA device;
* ``# doctest: long`` — it runs a full experiment (minutes).

Such blocks are only compiled (they must parse), and they are listed by
:func:`test_blocks_that_are_only_parsed` (printed with ``-s``) and pinned there, so a new
marker is a reviewed change, not a silent skip.
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKERS = ("needs-data", "needs-gpu", "long")
TIME_LIMIT_S = 40


def _blocks() -> list[tuple[str, int, str]]:
    """``(file, line, code)`` of every ```python block, ``line`` being the block's first line."""
    out = []
    for path in FILES:
        text = path.read_text()
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text[: m.start(1)].count("\n") + 1
            out.append((str(path.relative_to(ROOT)), line, m.group(1)))
    return out


def _marker(code: str) -> str | None:
    head = "\n".join(code.splitlines()[:3])
    m = re.search(r"#\s*doctest:\s*([\w-]+)", head)
    if m and m.group(1) not in MARKERS:
        raise AssertionError(f"unknown doctest marker {m.group(1)!r}; known: {MARKERS}")
    return m.group(1) if m else None


BLOCKS = _blocks()
RUN = [b for b in BLOCKS if _marker(b[2]) is None]
PARSE_ONLY = [b for b in BLOCKS if _marker(b[2]) is not None]

#: What some blocks must print (a check that they ran to the end and computed the right thing).
EXPECTED_OUTPUT = {
    ("README.md", 0): r"\(4, 2\) \(3, 4, 2\) \(4, 2\)",
    ("README.md", 2): r"\(5, 12\)",
    # block 3: the optimal α per τ bin and a finite (negative) correlation, not "nan"
    ("README.md", 3): r"optimal α per τ bin: \[.*\]\ncorrelation\(τ, optimal α\): -0\.\d+",
}


def _index_in_file(block: tuple[str, int, str]) -> int:
    return [b for b in BLOCKS if b[0] == block[0]].index(block)


def _repo_files() -> set[str]:
    """Changed, untracked and ignored files (``runs/`` is ignored), less Python's caches."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"], cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode != 0:
        return set()
    return {ln for ln in out.stdout.splitlines() if "__pycache__" not in ln and ".pytest_cache" not in ln}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"block ran longer than {TIME_LIMIT_S} s")


@pytest.mark.parametrize("block", RUN, ids=[f"{f}:{line}" for f, line, _ in RUN])
def test_block_runs_alone(block, monkeypatch):
    path, line, code = block
    monkeypatch.chdir(ROOT)
    before = _repo_files()
    namespace: dict = {"__name__": "__docs_example__"}
    stdout = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        with contextlib.redirect_stdout(stdout):
            exec(compile(code, f"{path}:{line}", "exec"), namespace)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    pattern = EXPECTED_OUTPUT.get((path, _index_in_file(block)))
    if pattern is not None:
        assert re.search(pattern, stdout.getvalue()), stdout.getvalue()
    new = _repo_files() - before
    assert not new, f"the block left files in the repository ({sorted(new)}); write outputs to a temp dir"


@pytest.mark.parametrize("block", PARSE_ONLY, ids=[f"{f}:{line}" for f, line, _ in PARSE_ONLY])
def test_marked_block_parses(block):
    path, line, code = block
    compile(code, f"{path}:{line}", "exec")


def test_blocks_that_are_only_parsed():
    """The blocks that are not run, with why; pinned so that adding a marker is deliberate."""
    listed = sorted(f"{f}:{line} ({_marker(c)})" for f, line, c in PARSE_ONLY)
    print("\ndocs blocks parsed but NOT run:\n  " + "\n  ".join(listed))
    assert [re.sub(r":\d+", "", s) for s in listed] == [
        "docs/datasets.md (needs-data)",
        "docs/datasets.md (needs-data)",
        "docs/datasets.md (needs-data)",
        "docs/experiments.md (long)",
        "docs/mtcrl.md (needs-data)",
    ]
    assert len(RUN) >= 20, len(RUN)


def test_every_file_is_scanned():
    assert {b[0] for b in BLOCKS} >= {"README.md", "docs/gmtl.md", "docs/shift.md", "docs/training.md"}
    assert len(BLOCKS) == len(RUN) + len(PARSE_ONLY)
