"""The results database: one SQLite file per output directory (stdlib ``sqlite3``, WAL mode).

Schema
------
``runs``     one row per (experiment, config hash, run key, seed): the unit of work. Columns
             ``id, experiment, config_hash, run_key, method, dataset, trial, seed, params``
             (JSON of the run's spec), ``status`` (``pending``, ``running``, ``done``,
             ``failed``, ``interrupted``), ``pid``, ``host``, ``attempts``, ``created``,
             ``started``, ``finished`` (Unix seconds), ``duration`` (seconds), ``error``.
``metrics``  one row per (run, name, task, split): ``value`` and ``higher_is_better``
             (1, 0 or NULL when the metric has no direction).
``configs``  the YAML of every config hash seen, per experiment.

Concurrency
-----------
Every process opens its own connection. A run is *claimed* inside ``BEGIN IMMEDIATE`` (one
writer at a time), which moves it from ``pending``/``interrupted`` to ``running`` and deletes
any metric rows a previous, interrupted attempt may have left. A run's metrics are inserted in
the same transaction that marks it ``done``, so a killed worker leaves either nothing or the
whole run. Runs left ``running`` by a process that no longer exists on this host are found by
:meth:`ResultStore.release_stale` and become ``interrupted`` (to be redone on the next call).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    run_key TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT '',
    dataset TEXT NOT NULL DEFAULT '',
    trial INTEGER NOT NULL DEFAULT 0,
    seed INTEGER NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',
    pid INTEGER,
    host TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    duration REAL,
    error TEXT,
    UNIQUE (experiment, config_hash, run_key, seed)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    task TEXT NOT NULL DEFAULT '',
    split TEXT NOT NULL DEFAULT '',
    value REAL,
    higher_is_better INTEGER,
    UNIQUE (run_id, name, task, split)
);
CREATE TABLE IF NOT EXISTS configs (
    experiment TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    yaml TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (experiment, config_hash)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (experiment, config_hash, status);
"""

#: Statuses a worker may claim.
CLAIMABLE = ("pending", "interrupted")
STATUSES = ("pending", "running", "done", "failed", "interrupted")


@dataclass(frozen=True)
class RunRow:
    """One row of the ``runs`` table."""

    id: int
    experiment: str
    config_hash: str
    run_key: str
    method: str
    dataset: str
    trial: int
    seed: int
    params: dict[str, Any]
    status: str
    attempts: int
    duration: float | None


@dataclass(frozen=True)
class MetricRow:
    """A metric to record: ``name`` for ``task`` on ``split``; direction for relative improvement."""

    name: str
    value: float
    task: str = ""
    split: str = "test"
    higher_is_better: bool | None = True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie (killed child not yet reaped) still answers kill(pid, 0).
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


class ResultStore:
    """The SQLite results database of one output directory.

    Parameters
    ----------
    path : the database file (created with its schema when absent)
    timeout : seconds a connection waits for a lock before raising
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        with self.transaction():
            for stmt in filter(None, (s.strip() for s in SCHEMA.split(";"))):
                self._conn.execute(stmt)

    # --- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error); one writer at a time."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query and return all rows."""
        return self._conn.execute(sql, tuple(args)).fetchall()

    # --- configs ----------------------------------------------------------------------
    def save_config(self, experiment: str, config_hash: str, yaml_text: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO configs (experiment, config_hash, yaml, created) VALUES (?,?,?,?)",
                (experiment, config_hash, yaml_text, time.time()),
            )

    def config_yaml(self, experiment: str, config_hash: str) -> str | None:
        rows = self.query(
            "SELECT yaml FROM configs WHERE experiment=? AND config_hash=?", (experiment, config_hash)
        )
        return rows[0]["yaml"] if rows else None

    # --- runs -------------------------------------------------------------------------
    def add_runs(self, experiment: str, config_hash: str, specs: Iterable[dict[str, Any]]) -> int:
        """Insert runs that are not there yet (idempotent). Returns how many were new.

        Each spec is a dict with ``run_key``, ``seed`` and optionally ``method``, ``dataset``,
        ``trial``, ``params``.
        """
        now = time.time()
        rows = [
            (
                experiment,
                config_hash,
                s["run_key"],
                s.get("method", ""),
                s.get("dataset", ""),
                int(s.get("trial", 0)),
                int(s["seed"]),
                json.dumps(s.get("params", {}), sort_keys=True, default=str),
                now,
            )
            for s in specs
        ]
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO runs (experiment, config_hash, run_key, method, dataset, trial,"
                " seed, params, created) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return c.total_changes - before

    def release_stale(self, experiment: str | None = None) -> int:
        """Mark ``running`` runs whose process is gone (on this host) as ``interrupted``."""
        host = socket.gethostname()
        sql = "SELECT id, pid, host FROM runs WHERE status='running'"
        args: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " AND experiment=?"
            args = (experiment,)
        with self.transaction() as c:
            stale = [
                r["id"]
                for r in c.execute(sql, args).fetchall()
                if r["host"] == host and (r["pid"] is None or not _pid_alive(int(r["pid"])))
            ]
            c.executemany("UPDATE runs SET status='interrupted' WHERE id=?", [(i,) for i in stale])
        return len(stale)

    def retry_failed(self, experiment: str, config_hash: str) -> int:
        """Put ``failed`` runs back to ``pending`` (a rerun tries them again)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE runs SET status='pending' WHERE experiment=? AND config_hash=? AND status='failed'",
                (experiment, config_hash),
            )
            return cur.rowcount

    def claim(self, experiment: str, config_hash: str, pid: int | None = None) -> RunRow | None:
        """Atomically take the next claimable run (lowest id) and mark it ``running``."""
        pid = os.getpid() if pid is None else pid
        with self.transaction() as c:
            row = c.execute(
                "SELECT * FROM runs WHERE experiment=? AND config_hash=? AND status IN (?, ?)"
                " ORDER BY id LIMIT 1",
                (experiment, config_hash, *CLAIMABLE),
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE runs SET status='running', pid=?, host=?, started=?, attempts=attempts+1,"
                " error=NULL WHERE id=?",
                (pid, socket.gethostname(), time.time(), row["id"]),
            )
            c.execute("DELETE FROM metrics WHERE run_id=?", (row["id"],))
            row = c.execute("SELECT * FROM runs WHERE id=?", (row["id"],)).fetchone()
        return _run_row(row)

    def finish(self, run_id: int, metrics: Iterable[MetricRow]) -> None:
        """Record a run's metrics and mark it ``done``, in one transaction."""
        now = time.time()
        data = [
            (
                run_id,
                m.name,
                m.task,
                m.split,
                None if m.value is None else float(m.value),
                None if m.higher_is_better is None else int(bool(m.higher_is_better)),
            )
            for m in metrics
        ]
        with self.transaction() as c:
            c.execute("DELETE FROM metrics WHERE run_id=?", (run_id,))
            c.executemany(
                "INSERT INTO metrics (run_id, name, task, split, value, higher_is_better)"
                " VALUES (?,?,?,?,?,?)",
                data,
            )
            c.execute(
                "UPDATE runs SET status='done', finished=?, duration=? - started WHERE id=?",
                (now, now, run_id),
            )

    def fail(self, run_id: int, error: str) -> None:
        """Mark a run ``failed`` with its error message (a rerun retries it)."""
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='failed', finished=?, duration=? - started, error=? WHERE id=?",
                (now, now, error[-4000:], run_id),
            )

    def set_status(self, run_ids: Iterable[int], status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with self.transaction() as c:
            c.executemany("UPDATE runs SET status=? WHERE id=?", [(status, i) for i in run_ids])

    # --- reading ----------------------------------------------------------------------
    def runs(
        self, experiment: str | None = None, config_hash: str | None = None, status: str | None = None
    ) -> list[RunRow]:
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        for col, val in (("experiment", experiment), ("config_hash", config_hash), ("status", status)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        return [_run_row(r) for r in self.query(sql + " ORDER BY id", args)]

    def status_counts(self, experiment: str, config_hash: str) -> dict[str, int]:
        rows = self.query(
            "SELECT status, COUNT(*) AS n FROM runs WHERE experiment=? AND config_hash=? GROUP BY status",
            (experiment, config_hash),
        )
        return {r["status"]: int(r["n"]) for r in rows}

    def experiments(self) -> list[tuple[str, str]]:
        """(experiment, config_hash) pairs that have at least one finished run, oldest first."""
        rows = self.query(
            "SELECT experiment, config_hash, MIN(id) AS first FROM runs WHERE status='done'"
            " GROUP BY experiment, config_hash ORDER BY first"
        )
        return [(r["experiment"], r["config_hash"]) for r in rows]

    def metrics_frame(self, experiment: str, config_hash: str) -> Any:
        """A long pandas DataFrame of finished runs' metrics with their run columns."""
        import pandas as pd

        rows = self.query(
            "SELECT r.id AS run_id, r.run_key, r.method, r.dataset, r.trial, r.seed, r.params,"
            " m.name, m.task, m.split, m.value, m.higher_is_better"
            " FROM metrics m JOIN runs r ON r.id = m.run_id"
            " WHERE r.experiment=? AND r.config_hash=? AND r.status='done' ORDER BY r.id",
            (experiment, config_hash),
        )
        cols = ["run_id", "run_key", "method", "dataset", "trial", "seed", "params", "name", "task",
                "split", "value", "higher_is_better"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df["params"] = df["params"].map(json.loads)
        return df


def _run_row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=int(r["id"]),
        experiment=r["experiment"],
        config_hash=r["config_hash"],
        run_key=r["run_key"],
        method=r["method"],
        dataset=r["dataset"],
        trial=int(r["trial"]),
        seed=int(r["seed"]),
        params=json.loads(r["params"]),
        status=r["status"],
        attempts=int(r["attempts"]),
        duration=r["duration"],
    )


__all__ = ["CLAIMABLE", "MetricRow", "ResultStore", "RunRow", "STATUSES"]
