"""Issue 15: claims with leases, thread counts in a run's identity, configs refused before queueing,
failures told apart by whether a rerun can fix them, one run loop for every launcher."""

from __future__ import annotations

import ast
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from causalmtl.experiments import ResultStore, run_experiment
from causalmtl.experiments import config as cfgmod
from causalmtl.experiments.runner import DB_NAME, ThreadMismatchError, error_kind
from causalmtl.experiments.store import boot_id, pid_start

SRC = Path(__file__).resolve().parents[2] / "src" / "causalmtl" / "experiments"


def _hold(db: Path, run_key: str, seed: int, **cols) -> None:
    """Make a run look claimed by someone else (the columns a claim writes)."""
    sets = ", ".join(f"{k}=?" for k in cols)
    with sqlite3.connect(db) as c:
        c.execute(f"UPDATE runs SET status='running', attempts=attempts+1, {sets} WHERE run_key=? AND seed=?",
                  (*cols.values(), run_key, seed))


def _status(db: Path, run_key: str, seed: int) -> tuple[str, int]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT status, attempts FROM runs WHERE run_key=? AND seed=?", (run_key, seed)).fetchone()


def test_stale_claims_are_taken_over_and_live_ones_reported(tmp_path):
    out = tmp_path / "o"
    assert run_experiment("toy-sweep", seeds=2, out=out).counts == {"done": 4}
    db = out / DB_NAME
    now = time.time()
    # another host, silent for longer than the lease: its process is gone, the run is redone
    _hold(db, "mtl/trial=0", 0, host="node-7", pid=4242, boot_id="b", heartbeat=now - 400, started=now - 900)
    # this host, this boot, a live PID that now belongs to another process (PID reuse)
    _hold(db, "mtl/trial=0", 1, host=socket.gethostname(), pid=os.getpid(), boot_id=boot_id(),
          pid_start="1", heartbeat=now, started=now)
    # another host with a fresh heartbeat: live, left alone and reported
    _hold(db, "ours/trial=0", 0, host="node-8", pid=99, boot_id="c", heartbeat=now - 5, started=now - 60)
    s = run_experiment("toy-sweep", seeds=2, out=out)
    assert _status(db, "mtl/trial=0", 0) == ("done", 3)  # done, faked claim, redone
    if pid_start(os.getpid()):  # Linux: the reused PID is recognised
        assert _status(db, "mtl/trial=0", 1) == ("done", 3)
    assert _status(db, "ours/trial=0", 0) == ("running", 2)
    assert s.counts == {"done": 3, "running": 1}
    [claim] = s.claimed_elsewhere
    assert (claim.run_key, claim.seed, claim.host, claim.pid) == ("ours/trial=0", 0, "node-8", 99)
    assert 4 <= claim.heartbeat_age < 60
    # the same claim is taken over once its heartbeat is older than the lease
    with ResultStore(db, lease_s=3) as st:
        assert st.release_stale("toy-sweep") == 1
    assert _status(db, "ours/trial=0", 0) == ("interrupted", 2)


def test_the_cli_says_runs_are_held_elsewhere(tmp_path, capsys):
    from causalmtl.cli import main

    out = tmp_path / "o"
    run_experiment("toy-sweep", out=out)
    _hold(out / DB_NAME, "ours/trial=0", 0, host="node-8", pid=99, boot_id="c", heartbeat=time.time(),
          started=time.time())
    assert main(["run", "toy-sweep", "--out", str(out), "--no-report"]) == 3
    err = capsys.readouterr().err
    assert "1/2 runs done" in err and "still running in other live process(es) (node-8:99" in err


def test_heartbeat_is_refreshed_while_a_claim_is_held(tmp_path):
    with ResultStore(tmp_path / "db.sqlite", lease_s=0.5) as st:
        st.add_runs("e", "h", [{"run_key": "a", "seed": 0}])
        row = st.claim("e", "h", threads=3)
        first = st.query("SELECT heartbeat, threads, boot_id, pid_start FROM runs WHERE id=?", (row.id,))[0]
        time.sleep(0.4)
        later = st.query("SELECT heartbeat FROM runs WHERE id=?", (row.id,))[0]["heartbeat"]
        assert later > first["heartbeat"]  # beats every lease_s / 10
        assert first["threads"] == 3 and row.threads == 3
        assert st.release_stale("e") == 0  # its own live claim is never released


def test_an_old_database_gains_the_lease_columns(tmp_path):
    db = tmp_path / DB_NAME
    with sqlite3.connect(db) as c:  # the schema before leases
        c.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL,"
                  " config_hash TEXT NOT NULL, run_key TEXT NOT NULL, method TEXT NOT NULL DEFAULT '',"
                  " dataset TEXT NOT NULL DEFAULT '', trial INTEGER NOT NULL DEFAULT 0, seed INTEGER NOT NULL,"
                  " params TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'pending', pid INTEGER,"
                  " host TEXT, attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, started REAL,"
                  " finished REAL, duration REAL, error TEXT, UNIQUE (experiment, config_hash, run_key, seed))")
    with ResultStore(db) as st:
        cols = {r["name"] for r in st.query("PRAGMA table_info(runs)")}
    assert {"boot_id", "pid_start", "heartbeat", "threads", "error_kind"} <= cols


def test_mixing_thread_counts_is_refused_unless_forced(tmp_path):
    out = tmp_path / "o"
    run_experiment("toy-sweep", out=out, threads=1)
    with ResultStore(out / DB_NAME) as st:
        assert {r.threads for r in st.runs("toy-sweep")} == {1}
    run_experiment("toy-sweep", out=out, threads=1)  # the same count: fine
    with pytest.raises(ThreadMismatchError, match="2 finished run.* computed with 1 torch thread.*uses 2"):
        run_experiment("toy-sweep", out=out, threads=2)
    s = run_experiment("toy-sweep", seeds=2, out=out, threads=2, force=True)
    assert s.counts == {"done": 4} and s.threads == [1, 2]


@pytest.mark.parametrize("overrides, bad", [
    (["inner.scale=1"], None),
    (["n_trials=0"], "n_trials"),  # not a rule key: the toy plans no runs
])
def test_a_config_that_plans_no_runs_is_refused(tmp_path, overrides, bad):
    if bad is None:
        assert run_experiment("toy-sweep", overrides, out=tmp_path).counts == {"done": 2}
        return
    with pytest.raises(ValueError, match="plans no runs"):
        run_experiment("toy-sweep", overrides, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "train.epochs=-1 (expected an int >= 1)"),
    ("train.batch_size=0", "train.batch_size=0 (expected an int >= 1)"),
    ("data.n_train=0", "data.n_train=0 (expected an int >= 1)"),
    ("alphas=[0,2]", "alphas=[0.0, 2.0] (each element must be a number in [0, 1]; 2.0 is not)"),
    ("data.m=1.5", "data.m=1.5 (expected a number in [0, 1])"),
    ("train.patience=0", "train.patience=0 (expected an int >= 1 (or null"),
    ("model.hidden=[64,0]", "model.hidden=[64, 0] (each element must be an int >= 1; 0 is not)"),
])
def test_values_that_can_never_work_are_refused_before_queueing(tmp_path, override, message):
    with pytest.raises(cfgmod.ConfigError) as info:
        run_experiment("quickstart", [override], out=tmp_path / "o")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()


def test_every_builtin_default_and_preset_passes_validation():
    from causalmtl.experiments import registry

    for exp in registry.all_experiments():
        assert cfgmod.config_problems(exp.config_cls()) == [], exp.name
        for preset in exp.presets.values():
            assert cfgmod.config_problems(cfgmod.build_config(exp.config_cls, base=preset)) == [], exp.name


@pytest.mark.parametrize("kwargs, match", [
    ({"device": "cuda:99"}, "cuda"),
    ({"device": "gpu"}, "device must be 'cpu' or 'cuda"),
    ({"threads": -5}, "threads must be an int >= 1"),
    ({"threads": 0}, "threads must be an int >= 1"),
    ({"workers": 0}, "workers must be an int >= 1"),
])
def test_bad_device_threads_workers_refused_before_queueing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_experiment("toy-sweep", out=tmp_path / "o", **kwargs)
    assert not (tmp_path / "o").exists()


def test_errors_a_rerun_cannot_fix_are_told_apart(tmp_path, capsys):
    from causalmtl.cli import main

    assert error_kind(ValueError("x")) == "config" and error_kind(OSError(28, "full")) == "transient"
    assert error_kind(RuntimeError("CUDA out of memory")) == "transient"
    out = tmp_path / "o"
    assert main(["run", "toy-sweep", "--set", "fail_method=ours", "fail_error=value", "--out", str(out),
                 "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "failed with an error a rerun will not fix" in err and "ValueError: planned failure" in err
    assert "rerun to retry" not in err
    with ResultStore(out / DB_NAME) as st:
        assert [r["error_kind"] for r in st.query("SELECT error_kind FROM runs WHERE status='failed'")] == ["config"]
    out2 = tmp_path / "o2"
    assert main(["run", "toy-sweep", "--set", "fail_method=ours", "--out", str(out2), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "rerun to retry" in err and "will not fix" not in err


def test_every_launcher_runs_runs_through_execute_one():
    tree = ast.parse((SRC / "launchers.py").read_text())
    from_runner = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "runner"
                   for a in n.names]
    assert "execute_one" in from_runner and not [n for n in from_runner if n.startswith("_")]
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert calls.count("execute_one") == 2  # run_data_parallel and the Slurm job
    src = (SRC / "launchers.py").read_text()
    assert "experiment.run(" not in src and "store.finish(" not in src and "store.fail(" not in src


def test_tensorboard_flag_reaches_the_trainer(tmp_path, monkeypatch, capsys):
    from causalmtl.cli import main
    from causalmtl.train import trainer as trainer_mod

    seen = []

    class Stop(Exception):
        pass

    def fit(self, *args, **kwargs):
        seen.append(self.tensorboard_dir)
        raise Stop("stop after construction")

    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    tb = tmp_path / "tb"
    main(["run", "quickstart", "--preset", "tiny", "--set", "gmtl_methods=[stl]", "mtcrl_methods=[stl]",
          "--out", str(tmp_path / "o"), "--tensorboard", str(tb), "--no-report"])
    with ResultStore(tmp_path / "o" / DB_NAME) as st:
        run_id = st.runs("quickstart")[0].id
    assert seen and Path(seen[0]) == tb / "quickstart" / str(run_id) / "main"


def test_tensorboard_logs_are_written_where_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="optional extra 'tensorboard'")
    from causalmtl.cli import main

    tb = tmp_path / "tb"
    assert main(["run", "quickstart", "--preset", "tiny", "--set", "gmtl_methods=[stl]", "mtcrl_methods=[stl]",
                 "train.epochs=1", "n_draws=2", "--out", str(tmp_path / "o"), "--tensorboard", str(tb),
                 "--no-report"]) == 0
    assert list(tb.glob("quickstart/*/main/events.out.tfevents.*"))
