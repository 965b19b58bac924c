import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from causalmtl.experiments import MetricRow, ResultStore, load_artefacts, run_experiment
from causalmtl.experiments.runner import DB_NAME

HERE = Path(__file__).parent


def _count(db: Path, sql: str) -> int:
    with ResultStore(db) as s:
        return int(s.query(sql)[0][0])


def test_rerun_is_idempotent_and_artefacts_saved(tmp_path):
    s1 = run_experiment("toy-sweep", ["n_trials=2"], seeds=2, out=tmp_path)
    assert s1.counts == {"done": 8} and s1.executed == 8
    s2 = run_experiment("toy-sweep", ["n_trials=2"], seeds=2, out=tmp_path)
    assert s2.counts == {"done": 8}
    db = tmp_path / DB_NAME
    assert _count(db, "SELECT COUNT(*) FROM runs") == 8
    assert _count(db, "SELECT MAX(attempts) FROM runs") == 1  # nothing redone
    assert _count(db, "SELECT COUNT(*) FROM metrics") == 8 * 4
    # more seeds only adds the new runs
    s3 = run_experiment("toy-sweep", ["n_trials=2"], seeds=3, out=tmp_path)
    assert s3.counts == {"done": 12}
    assert _count(db, "SELECT MAX(attempts) FROM runs") == 1
    with ResultStore(db) as st:
        run = st.runs("toy-sweep", status="done")[0]
    arrays, info = load_artefacts(tmp_path, "toy-sweep", run.id)
    np.testing.assert_array_equal(arrays["x"], np.arange(3) + run.seed)
    assert info["key"] == run.run_key


def test_failed_runs_are_recorded_and_retried(tmp_path):
    s = run_experiment("toy-sweep", ["fail_method=ours"], seeds=2, out=tmp_path)
    assert s.counts == {"done": 2, "failed": 2}
    assert len(s.failed) == 2 and all(f.startswith("ours") for f in s.failed)
    with ResultStore(tmp_path / DB_NAME) as st:
        errs = [r["error"] for r in st.query("SELECT error FROM runs WHERE status='failed'")]
    assert all("planned failure" in e for e in errs)
    # the fault is fixed (the config differs only in fail_method): --force, new hash, all done
    s = run_experiment("toy-sweep", [], seeds=2, out=tmp_path, force=True)
    assert s.counts == {"done": 4}


def _hammer(db: str, worker: int, n_runs: int) -> None:
    """Each worker inserts the same runs (a race) and then claims and finishes until none."""
    with ResultStore(db) as st:
        st.add_runs("race", "h", [{"run_key": f"r{i}", "seed": 0} for i in range(n_runs)])
        while (row := st.claim("race", "h")) is not None:
            st.finish(row.id, [MetricRow("m", float(row.id), task=f"t{t}") for t in range(3)]
                      + [MetricRow("who", float(worker))])


def test_two_workers_lose_nothing(tmp_path):
    db = str(tmp_path / "race.sqlite")
    ctx = mp.get_context("fork")  # the children only use sqlite
    n = 60
    procs = [ctx.Process(target=_hammer, args=(db, w, n)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert _count(Path(db), "SELECT COUNT(*) FROM runs") == n
    assert _count(Path(db), "SELECT COUNT(*) FROM runs WHERE status='done' AND attempts=1") == n
    assert _count(Path(db), "SELECT COUNT(*) FROM metrics") == n * 4
    assert _count(Path(db), "SELECT COUNT(DISTINCT run_id) FROM metrics WHERE name='m'") == n


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import _toy_experiments
from causalmtl.experiments import run_experiment
run_experiment("toy-sweep", ["n_trials=2", "sleep=0.3"], seeds=2, workers=2, out={out!r}, start_method="fork")
"""


def test_killed_worker_then_rerun_records_each_run_once(tmp_path):
    out = tmp_path / "sweep"
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT.format(here=str(HERE), out=str(out))])
    db = out / DB_NAME
    victim = None
    deadline = time.time() + 60
    while victim is None and time.time() < deadline:
        time.sleep(0.1)
        if not db.exists():
            continue
        with ResultStore(db) as st:
            rows = st.query("SELECT pid FROM runs WHERE status='running' AND pid != ?", (parent.pid,))
        if rows:
            victim = int(rows[0]["pid"])
    assert victim is not None, "no worker started a run"
    os.kill(victim, signal.SIGKILL)
    parent.wait(60)
    with ResultStore(db) as st:
        counts = {r["status"]: r["n"] for r in st.query("SELECT status, COUNT(*) n FROM runs GROUP BY status")}
    assert counts.get("interrupted", 0) >= 1  # the killed worker's run
    assert sum(counts.values()) == 8
    s = run_experiment("toy-sweep", ["n_trials=2", "sleep=0.3"], seeds=2, out=out)
    assert s.counts == {"done": 8}
    assert _count(db, "SELECT COUNT(*) FROM runs") == 8
    assert _count(db, "SELECT COUNT(*) FROM metrics") == 8 * 4
    assert _count(db, "SELECT COUNT(*) FROM (SELECT run_key, seed FROM runs GROUP BY run_key, seed)") == 8
    assert _count(db, "SELECT MAX(attempts) FROM runs") == 2  # the interrupted run was redone
    assert _count(db, "SELECT COUNT(DISTINCT pid) FROM runs") >= 2  # both workers did work


def test_bad_runner_arguments(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        run_experiment("toy-sweep", workers=0, out=tmp_path)
    with pytest.raises(ValueError, match="device"):
        run_experiment("toy-sweep", device="tpu", out=tmp_path)
