"""The results database: one SQLite file per output directory (stdlib ``sqlite3``, WAL mode).

Schema
------
``runs``     one row per (experiment, config hash, run key, seed): the unit of work. Columns
             ``id, experiment, config_hash, run_key, method, dataset, trial, seed, params``
             (JSON of the run's spec), ``status`` (``pending``, ``running``, ``done``,
             ``failed``, ``interrupted``), ``pid``, ``host``, ``attempts``, ``created``,
             ``started``, ``finished`` (Unix seconds), ``duration`` (seconds), ``error``;
             the claim's lease: ``boot_id`` (the host's boot), ``pid_start`` (the process's
             start time, so a reused PID is not mistaken for it), ``heartbeat`` (Unix seconds,
             refreshed while the claiming process lives); ``threads`` (torch intra-op threads
             of the process that ran it: part of the run's identity, since the thread count
             changes results in the last digits); ``error_kind`` (``config`` for an error a
             rerun cannot fix, ``transient`` otherwise).
``metrics``  one row per (run, name, task, split): ``value`` and ``higher_is_better``
             (1, 0 or NULL when the metric has no direction).
``configs``  the YAML of every config hash seen, per experiment.

Concurrency
-----------
Every process opens its own connection. A run is *claimed* inside ``BEGIN IMMEDIATE`` (one
writer at a time), which moves it from ``pending``/``interrupted`` to ``running`` and deletes
any metric rows a previous, interrupted attempt may have left. A run's metrics are inserted in
the same transaction that marks it ``done``, so a killed worker leaves either nothing or the
whole run.

Leases
------
A claim records the claiming process (host, boot id, PID and the PID's start time) and a
heartbeat that a background thread of that process refreshes every ``lease_s / 10`` seconds
while it holds running claims. :meth:`ResultStore.release_stale` marks a ``running`` run
``interrupted`` (to be redone) when its claimer is provably gone — on this host and boot, the
PID is dead or now belongs to another process (a different start time); on this host after a
reboot — or, for a claimer on another host, when its heartbeat is older than ``lease_s``
(default 300 s, or ``$CAUSALMTL_LEASE_S``). Runs still held by live claimers are listed by
:meth:`ResultStore.claimed_by_others`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
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

#: Columns added after the first schema: added to an older database when it is opened.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("boot_id", "TEXT"),
    ("pid_start", "TEXT"),
    ("heartbeat", "REAL"),
    ("threads", "INTEGER"),
    ("error_kind", "TEXT"),
)

#: Seconds without a heartbeat after which a claim from another host is taken over.
DEFAULT_LEASE_S = 300.0

#: Statuses a worker may claim.
CLAIMABLE = ("pending", "interrupted")
STATUSES = ("pending", "running", "done", "failed", "interrupted")
#: Kinds of failure: an error a rerun cannot fix, or one it may.
ERROR_KINDS = ("config", "transient")


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
    threads: int | None = None


@dataclass(frozen=True)
class MetricRow:
    """A metric to record: ``name`` for ``task`` on ``split``; direction for relative improvement."""

    name: str
    value: float
    task: str = ""
    split: str = "test"
    higher_is_better: bool | None = True


class StoreError(RuntimeError):
    """The results database cannot be opened or written (the message names the file).

    ``user_facing``: the CLI prints the message as one line, without a traceback.
    """

    user_facing = True


def boot_id() -> str:
    """This host's boot id (Linux ``/proc/sys/kernel/random/boot_id``; ``""`` elsewhere)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def pid_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, field 22 of ``/proc/PID/stat``).

    ``""`` where unknown (not Linux, or no such process). Together with the boot id it tells
    a reused PID from the process that made a claim.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def lease_seconds() -> float:
    """The lease: ``$CAUSALMTL_LEASE_S`` or :data:`DEFAULT_LEASE_S`."""
    raw = os.environ.get("CAUSALMTL_LEASE_S", "")
    if not raw:
        return DEFAULT_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"environment variable CAUSALMTL_LEASE_S must be a number of seconds > 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Claim:
    """A ``running`` run held by a live process elsewhere (:meth:`ResultStore.claimed_by_others`)."""

    run_key: str
    seed: int
    host: str
    pid: int | None
    heartbeat_age: float | None  # seconds since its last heartbeat


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
    lease_s : seconds without a heartbeat after which another host's claim is taken over
        (default ``$CAUSALMTL_LEASE_S`` or 300); this process's heartbeat runs every
        ``lease_s / 10`` seconds while it holds claims

    Raises
    ------
    StoreError
        When the file is not an SQLite database (truncated, garbage) or cannot be written.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 60.0, lease_s: float | None = None) -> None:
        self.path = Path(path)
        self.lease_s = lease_seconds() if lease_s is None else float(lease_s)
        if not self.lease_s > 0:
            raise ValueError(f"lease_s must be > 0 seconds, got {lease_s!r}")
        self._timeout = timeout
        self._heart: threading.Thread | None = None
        self._heart_stop = threading.Event()
        self._me_cache: tuple[str, str, int, str] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path.parent}: cannot create the directory of the results database: "
                             f"{exc.strerror or exc}") from None
        try:
            self._conn = self._connect()
            with self.transaction():
                for stmt in filter(None, (s.strip() for s in SCHEMA.split(";"))):
                    self._conn.execute(stmt)
                have = {r["name"] for r in self._conn.execute("PRAGMA table_info(runs)")}
                for col, kind in ADDED_COLUMNS:
                    if col not in have:
                        self._conn.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
            self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    @property
    def _me(self) -> tuple[str, str, int, str]:
        """(host, boot id, PID, PID start time) of this process (recomputed after a fork)."""
        if self._me_cache is None or self._me_cache[2] != os.getpid():
            pid = os.getpid()
            self._me_cache = (socket.gethostname(), boot_id(), pid, pid_start(pid))
        return self._me_cache

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        return conn

    def _error(self, exc: sqlite3.Error) -> StoreError:
        msg = str(exc)
        if "not a database" in msg or "malformed" in msg:
            what = f"not a causalmtl results database, or a damaged one (SQLite: {msg}); move it aside or use another --out"
        elif "readonly" in msg or "unable to open" in msg or "disk I/O" in msg:
            what = f"cannot write the results database (SQLite: {msg}); is the directory writable?"
        elif "full" in msg:
            what = f"the disk is full (SQLite: {msg}); free space and rerun"
        else:
            what = f"results database error (SQLite: {msg})"
        return StoreError(f"{self.path}: {what}")

    # --- plumbing ---------------------------------------------------------------------
    def close(self) -> None:
        self._stop_heartbeat()
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error); one writer at a time.

        SQLite's own errors (a damaged file, a read-only directory, a full disk) become a
        :class:`StoreError` naming the database.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        try:
            yield self._conn
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._error(exc) from None
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query and return all rows."""
        try:
            return self._conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    # --- heartbeat --------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        """Refresh the heartbeat of this process's running claims until :meth:`close`."""
        if self._heart is not None and self._heart.is_alive():
            return
        self._heart_stop.clear()
        self._heart = threading.Thread(target=self._beat, name="causalmtl-heartbeat", daemon=True)
        self._heart.start()

    def _beat(self) -> None:
        host, boot, pid, _ = self._me
        interval = self.lease_s / 10
        try:
            conn = self._connect()
        except sqlite3.Error:  # pragma: no cover - the main connection opened the same file
            return
        try:
            while not self._heart_stop.wait(interval):
                try:
                    conn.execute(
                        "UPDATE runs SET heartbeat=? WHERE status='running' AND host=? AND pid=? AND"
                        " COALESCE(boot_id, '')=?", (time.time(), host, pid, boot))
                except sqlite3.Error:  # busy or gone: the next beat tries again
                    continue
        finally:
            conn.close()

    def _stop_heartbeat(self) -> None:
        if self._heart is not None:
            self._heart_stop.set()
            self._heart.join(timeout=5)
            self._heart = None

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

    def _claimer_gone(self, r: sqlite3.Row, now: float) -> bool:
        """Whether the process that claimed running run ``r`` is gone (module docstring)."""
        host, boot, _, _ = self._me
        if r["host"] == host and boot and r["boot_id"]:
            if r["boot_id"] != boot:
                return True  # this host rebooted since the claim
            if r["pid"] is None or not _pid_alive(int(r["pid"])):
                return True
            started = pid_start(int(r["pid"]))
            return bool(r["pid_start"]) and bool(started) and started != r["pid_start"]  # PID reused
        if r["host"] == host and not r["boot_id"]:  # a claim from before leases: the PID test
            if r["pid"] is None or not _pid_alive(int(r["pid"])):
                return True
        beat = r["heartbeat"] if r["heartbeat"] is not None else r["started"]
        return beat is None or now - float(beat) > self.lease_s

    def release_stale(self, experiment: str | None = None) -> int:
        """Mark ``running`` runs whose claiming process is gone as ``interrupted``.

        Gone: on this host and boot, the PID is dead or reused; on this host, a reboot since;
        elsewhere, no heartbeat for ``lease_s`` seconds. Returns how many were released.
        """
        sql = "SELECT * FROM runs WHERE status='running'"
        args: tuple[Any, ...] = ()
        if experiment is not None:
            sql += " AND experiment=?"
            args = (experiment,)
        now = time.time()
        with self.transaction() as c:
            stale = [r["id"] for r in c.execute(sql, args).fetchall() if self._claimer_gone(r, now)]
            c.executemany("UPDATE runs SET status='interrupted' WHERE id=?", [(i,) for i in stale])
        return len(stale)

    def claimed_by_others(self, experiment: str, config_hash: str) -> list[Claim]:
        """``running`` runs of the config held by live processes other than this one."""
        host, boot, pid, _ = self._me
        now = time.time()
        out = []
        for r in self.query("SELECT * FROM runs WHERE experiment=? AND config_hash=? AND status='running'"
                            " ORDER BY id", (experiment, config_hash)):
            if r["host"] == host and r["pid"] == pid and (r["boot_id"] or "") == boot:
                continue
            beat = r["heartbeat"] if r["heartbeat"] is not None else r["started"]
            out.append(Claim(r["run_key"], int(r["seed"]), r["host"] or "?",
                             None if r["pid"] is None else int(r["pid"]),
                             None if beat is None else max(0.0, now - float(beat))))
        return out

    def thread_counts(self, experiment: str, config_hash: str) -> dict[int, int]:
        """``{threads: number of finished runs}`` of the config (runs of unknown count left out)."""
        rows = self.query("SELECT threads, COUNT(*) AS n FROM runs WHERE experiment=? AND config_hash=?"
                          " AND status='done' AND threads IS NOT NULL GROUP BY threads",
                          (experiment, config_hash))
        return {int(r["threads"]): int(r["n"]) for r in rows}

    def retry_failed(self, experiment: str, config_hash: str) -> int:
        """Put ``failed`` runs back to ``pending`` (a rerun tries them again)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE runs SET status='pending' WHERE experiment=? AND config_hash=? AND status='failed'",
                (experiment, config_hash),
            )
            return cur.rowcount

    def claim(self, experiment: str, config_hash: str, pid: int | None = None,
              threads: int | None = None) -> RunRow | None:
        """Atomically take the next claimable run (lowest id) and mark it ``running``.

        The claim records this process (host, boot id, PID and its start time) and starts the
        heartbeat; ``threads`` (the torch thread count the run will use) is recorded with it.
        """
        host, boot, my_pid, my_start = self._me
        if pid is None:
            pid, start = my_pid, my_start
        else:
            start = pid_start(pid)
        with self.transaction() as c:
            row = c.execute(
                "SELECT * FROM runs WHERE experiment=? AND config_hash=? AND status IN (?, ?)"
                " ORDER BY id LIMIT 1",
                (experiment, config_hash, *CLAIMABLE),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            c.execute(
                "UPDATE runs SET status='running', pid=?, host=?, boot_id=?, pid_start=?, started=?,"
                " heartbeat=?, threads=?, attempts=attempts+1, error=NULL, error_kind=NULL WHERE id=?",
                (pid, host, boot, start, now, now, None if threads is None else int(threads), row["id"]),
            )
            c.execute("DELETE FROM metrics WHERE run_id=?", (row["id"],))
            row = c.execute("SELECT * FROM runs WHERE id=?", (row["id"],)).fetchone()
        self._start_heartbeat()
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

    def fail(self, run_id: int, error: str, kind: str = "transient") -> None:
        """Mark a run ``failed`` with its error message (a rerun retries it).

        ``kind``: ``"config"`` for an error a rerun cannot fix (a bad value, missing data),
        ``"transient"`` otherwise (out of memory, a full disk, a lost node).
        """
        if kind not in ERROR_KINDS:
            raise ValueError(f"kind must be one of {ERROR_KINDS}, got {kind!r}")
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='failed', finished=?, duration=? - started, error=?, error_kind=?"
                " WHERE id=?",
                (now, now, error[-4000:], kind, run_id),
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
        threads=None if r["threads"] is None else int(r["threads"]),
    )


__all__ = ["CLAIMABLE", "Claim", "ERROR_KINDS", "MetricRow", "ResultStore", "RunRow", "STATUSES", "StoreError"]
