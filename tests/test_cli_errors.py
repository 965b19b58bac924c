"""Issue 15: what a user types or finds on disk never prints a Python traceback.

Each case runs the CLI (``main``, in this process, so that a full or read-only disk can be
simulated with monkeypatch) and must exit non-zero with exactly one ``error:`` line naming the
file or argument at fault, and no traceback.
"""

from __future__ import annotations

import errno
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from causalmtl.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, str(Path(__file__).resolve().parent / "experiments"))
import _toy_experiments  # noqa: E402,F401  (registers "toy-sweep")


def _gmtl_layout(root: Path, broken: bytes | None = None) -> Path:
    """The GMTL authors' layout for 2 binary tasks, alpha 0 and 0.5 (``broken`` replaces alpha 0.5's file)."""
    d = root / "gmtl" / "s=0"
    d.mkdir(parents=True)
    y = np.array([[0, 1], [1, 0], [1, 1]])
    (d / "y_pred_None.pkl").write_bytes(pickle.dumps((y, y)))
    data = pickle.dumps((y, y))
    (d / "y_pred_0.5.pkl").write_bytes(data if broken is None else broken(data))
    return root / "gmtl"


def _prior(root: Path) -> Path:
    import torch

    torch.save(torch.log(torch.full((4,), 0.25)), root / "prior.pt")
    return root / "prior.pt"


def _bundle(root: Path) -> Path:
    np.savez(root / "b.npz", labels=np.zeros((4, 2), int), n_classes=np.array([2, 2]))
    return root / "b.npz"


def _results_db(root: Path) -> Path:
    out = root / "o"
    assert main(["run", "toy-sweep", "--out", str(out), "--no-report"]) == 0
    return out


def _no_space(monkeypatch, cls, method):
    def full(self, *args, **kwargs):
        where = args[0] if args and isinstance(args[0], (str, os.PathLike)) else self
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(where))

    monkeypatch.setattr(cls, method, full)


def case_run_out_is_a_file(t, mp):
    (t / "f").write_text("x")
    return ["run", "toy-sweep", "--out", str(t / "f")], f"--out '{t / 'f'}' is not a directory"


def case_run_out_under_a_file(t, mp):
    (t / "f").write_text("x")
    return ["run", "toy-sweep", "--out", str(t / "f" / "sub")], "a parent of it is a file"


def case_run_out_read_only(t, mp):
    ro = t / "ro"
    ro.mkdir()
    real = os.access
    mp.setattr(os, "access", lambda p, mode, **k: False if Path(p) == ro else real(p, mode, **k))
    return ["run", "toy-sweep", "--out", str(ro)], f"--out '{ro}' is not writable"


def case_run_out_parent_read_only(t, mp):
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if self == t / "ro" / "new":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *a, **k)

    mp.setattr(Path, "mkdir", mkdir)
    return ["run", "toy-sweep", "--out", str(t / "ro" / "new")], "cannot be created: Permission denied"


def case_run_disk_full(t, mp):
    _no_space(mp, Path, "write_bytes")
    return ["run", "toy-sweep", "--out", str(t / "o")], (f"{t / 'o' / 'configs'}/.toy-sweep.yaml.", ".tmp: No space left on device")


def case_shift_out_is_a_file(t, mp):
    (t / "f").write_text("x")
    return ["shift", "--bundle", str(_bundle(t)), "--out", str(t / "f")], f"--out '{t / 'f'}' is not a directory"


def case_shift_out_read_only(t, mp):
    ro = t / "ro"
    ro.mkdir()
    real = os.access
    mp.setattr(os, "access", lambda p, mode, **k: False if Path(p) == ro else real(p, mode, **k))
    return ["shift", "--bundle", str(_bundle(t)), "--out", str(ro)], "is not writable"


def case_shift_disk_full(t, mp):
    def full(path, *args, **kwargs):  # the draws table is the first file written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

    mp.setattr(np, "savetxt", full)
    bundle = t / "full.npz"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, 2))
    logp = np.log(np.full((40, 2), 0.5))
    np.savez(bundle, labels=y, n_classes=np.array([2, 2]), alphas=np.array([0.0, 1.0]),
             predictions=np.stack([y, y]), log_probs_0=logp, log_probs_1=logp)
    return (["shift", "--bundle", str(bundle), "--out", str(t / "s"), "--draws", "4", "--no-figures"],
            f"{t / 's' / 'draws.csv'}: No space left on device")


def case_figure2_missing_directory(t, mp):
    return ["data", "figure2", str(t / "missing" / "fig.png")], f"its directory '{t / 'missing'}' does not exist"


def case_set_yaml_syntax_error(t, mp):
    return ["run", "toy-sweep", "--set", "methods=[mtl", "--out", str(t / "o")], "override methods='[mtl'"


def case_bundle_truncated(t, mp):
    data = _bundle(t).read_bytes()
    (t / "cut.npz").write_bytes(data[: len(data) // 2])
    return ["shift", "--bundle", str(t / "cut.npz")], f"{t / 'cut.npz'}: not a causalmtl prediction bundle (.npz)"


def case_bundle_foreign_text(t, mp):
    (t / "x.npz").write_text("id,label\n1,0\n")
    return ["shift", "--bundle", str(t / "x.npz")], f"{t / 'x.npz'}: not a causalmtl prediction bundle (.npz)"


def case_bundle_with_objects(t, mp):
    np.savez(t / "o.npz", labels=np.array([{"a": 1}], dtype=object), n_classes=np.array([2]))
    return ["shift", "--bundle", str(t / "o.npz")], f"{t / 'o.npz'}: not a causalmtl prediction bundle (.npz)"


def case_bundle_single_npy(t, mp):
    np.save(t / "a.npy", np.zeros(3))
    return ["shift", "--bundle", str(t / "a.npy")], f"{t / 'a.npy'}: not a causalmtl prediction bundle (.npz)"


def case_gmtl_dir_truncated_pickle(t, mp):
    d = _gmtl_layout(t, broken=lambda b: b[:20])
    return (["shift", "--gmtl-dir", str(d), "--log-prior", str(_prior(t)), "--n-classes", "2", "2", "--alphas", "0.5"],
            "y_pred_0.5.pkl: not a readable GMTL prediction pickle")


def case_gmtl_dir_foreign_file(t, mp):
    d = _gmtl_layout(t, broken=lambda b: b"<html>not a pickle</html>")
    return (["shift", "--gmtl-dir", str(d), "--log-prior", str(_prior(t)), "--n-classes", "2", "2", "--alphas", "0.5"],
            "y_pred_0.5.pkl: not a readable GMTL prediction pickle")


def case_gmtl_dir_is_a_file(t, mp):
    (t / "f").write_text("x")
    return (["shift", "--gmtl-dir", str(t / "f"), "--log-prior", str(_prior(t)), "--n-classes", "2", "2",
             "--alphas", "0.5"], f"--gmtl-dir '{t / 'f'}' is not a directory")


def case_log_prior_truncated(t, mp):
    d = _gmtl_layout(t)
    data = _prior(t).read_bytes()
    (t / "cut.pt").write_bytes(data[: len(data) // 2])
    return (["shift", "--gmtl-dir", str(d), "--log-prior", str(t / "cut.pt"), "--n-classes", "2", "2", "--alphas", "0.5"],
            f"log prior file '{t / 'cut.pt'}': not a readable log prior")


def case_log_prior_garbage(t, mp):
    d = _gmtl_layout(t)
    (t / "g.pt").write_text("0.25 0.25 0.25 0.25")
    return (["shift", "--gmtl-dir", str(d), "--log-prior", str(t / "g.pt"), "--n-classes", "2", "2", "--alphas", "0.5"],
            f"log prior file '{t / 'g.pt'}': not a readable log prior")


def case_results_db_garbage_report(t, mp):
    (t / "o").mkdir()
    (t / "o" / "results.sqlite").write_bytes(b"garbage " * 300)
    return ["report", str(t / "o")], f"{t / 'o' / 'results.sqlite'}: not a causalmtl results database"


def case_results_db_garbage_run(t, mp):
    (t / "o").mkdir()
    (t / "o" / "results.sqlite").write_bytes(b"garbage " * 300)
    return ["run", "toy-sweep", "--out", str(t / "o")], f"{t / 'o' / 'results.sqlite'}: not a causalmtl results database"


def case_results_db_truncated(t, mp):
    out = _results_db(t)
    db = out / "results.sqlite"
    with sqlite3.connect(db) as c:  # fold the WAL into the file, then cut it
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    db.write_bytes(data[:1500])
    return ["run", "toy-sweep", "--out", str(out)], f"{db}: not a causalmtl results database, or a damaged one"


def case_results_db_is_a_directory(t, mp):
    (t / "o" / "results.sqlite").mkdir(parents=True)
    return ["run", "toy-sweep", "--out", str(t / "o")], f"{t / 'o' / 'results.sqlite'}: cannot write the results database"


def case_stored_config_garbage(t, mp):
    out = _results_db(t)
    (out / "configs" / "toy-sweep.yaml").write_text("methods: [mtl\n  x: {{{\n")
    return ["run", "toy-sweep", "--out", str(out)], f"{out / 'configs' / 'toy-sweep.yaml'}: not a valid stored config YAML"


def case_resources_yaml_garbage(t, mp):
    (t / "r.yaml").write_text("partition: [gpu\n")
    return (["run", "toy-sweep", "--launcher", "slurm", "--resources", str(t / "r.yaml"), "--out", str(t / "o")],
            f"{t / 'r.yaml'}: not a valid resources YAML file")


def case_device_cuda_without_cuda(t, mp):
    import torch

    mp.setattr(torch.cuda, "is_available", lambda: False)
    return ["run", "toy-sweep", "--device", "cuda", "--out", str(t / "o")], "--device cuda: torch sees no CUDA device"


def case_negative_threads(t, mp):
    return ["run", "toy-sweep", "--threads", "-5", "--out", str(t / "o")], "--threads must be >= 1"


def case_bad_config_values(t, mp):
    return (["run", "quickstart", "--set", "train.epochs=-1", "train.batch_size=0", "data.n_train=0", "alphas=[0,2]",
             "--out", str(t / "o")], "train.epochs=-1 (expected an int >= 1)")


def case_missing_data_in_the_cli_words(t, mp):
    mp.delenv("CAUSALMTL_DATA", raising=False)
    return ["run", "movielens", "--out", str(t / "o")], "missing file 'ratings.csv'", "pass --set data.path=..."


def case_missing_mnist_in_the_cli_words(t, mp):
    mp.delenv("CAUSALMTL_DATA", raising=False)
    return ["data", "show", "multi-mnist"], "pass --data-dir DIR"


CASES = {name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_case_is_one_line_and_non_zero(name, tmp_path, monkeypatch, capsys):
    argv, *names = CASES[name](tmp_path, monkeypatch)
    names = names[0] if len(names) == 1 else tuple(names)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1, err
    for part in (names,) if isinstance(names, str) else names:
        assert part in errors[0], err
    assert errors[0] == lines[-1]
    if name in ("bad_config_values", "negative_threads", "device_cuda_without_cuda", "set_yaml_syntax_error"):
        assert not (tmp_path / "o").exists()  # refused before anything was written


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    code = ("import sys; import causalmtl.experiments.runner as r\n"
            "def boom(*a, **k): raise KeyError('surprise')\n"
            "r.plan_sweep = boom\n"
            "from causalmtl.cli import main; sys.exit(main(sys.argv[1:]))")
    args = ["run", "quickstart", "--out", str(tmp_path / "o")]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "causalmtl run: error: KeyError: 'surprise' (run with --debug for the traceback)")
    p = subprocess.run([sys.executable, "-c", code, "--debug", *args], capture_output=True, text=True, env=env)
    assert p.returncode != 0 and "Traceback" in p.stderr and "KeyError: 'surprise'" in p.stderr


def test_help_and_argument_errors_import_no_heavy_library():
    code = ("import sys\nfrom causalmtl.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'scipy', 'pandas', 'numpy', 'matplotlib') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert p.stdout.strip() == "[]"
    p = subprocess.run([sys.executable, "-m", "causalmtl.cli", "run", "--workers"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 2 and "expected one argument" in p.stderr


def test_list_and_readme_give_the_same_quickstart_time():
    from causalmtl.experiments import registry

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    seconds = registry.get("quickstart").expected_seconds
    assert f"in {registry.format_seconds(seconds)} on an idle 2-core machine" in readme


def _full_bundle(root: Path) -> Path:
    """A readable prediction bundle: 2 binary tasks, alphas 0 and 1."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, 2))
    logp = np.log(np.full((40, 2), 0.5))
    path = root / "full.npz"
    np.savez(path, labels=y, n_classes=np.array([2, 2]), alphas=np.array([0.0, 1.0]),
             predictions=np.stack([y, y]), log_probs_0=logp, log_probs_1=logp)
    return path


@pytest.mark.parametrize("tty", [False, True])
def test_shift_shows_bars_only_on_a_terminal(tmp_path, monkeypatch, capsys, tty):
    import causalmtl.shift.evaluate as ev

    seen = {}

    def fake(*args, progress=False, **kwargs):
        seen["progress"] = progress
        raise RuntimeError("stop here")

    monkeypatch.setattr(ev, "evaluate_shift", fake)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert main(["shift", "--bundle", str(_full_bundle(tmp_path)), "--out", str(tmp_path / "s")]) == 1
    assert "RuntimeError: stop here" in capsys.readouterr().err
    assert seen["progress"] is tty
