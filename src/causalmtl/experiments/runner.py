"""Running experiments: configs on disk, the sweep, workers, idempotent reruns.

Layout of an output directory::

    OUT/results.sqlite                 the database (store.py)
    OUT/configs/<experiment>.yaml      the config the results belong to
    OUT/artefacts/<experiment>/<run id>/arrays.npz, info.json
    OUT/report.html, OUT/report.md, OUT/figures/*.png   (written by causalmtl.report)

:func:`run_experiment` resolves and validates the config, device and thread count before
anything is queued (:func:`plan_sweep`), refuses an output directory whose stored config
differs (unless ``force``; the error lists what differs) or whose finished runs used another
torch thread count, inserts the missing runs, marks runs whose claimer is gone as interrupted
(leases: :mod:`~causalmtl.experiments.store`), and executes every claimable run, in this
process (``workers=1``) or in ``workers`` spawned processes that claim runs from the database
one at a time. Finished runs are never redone; interrupted and failed ones are redone.

Every launcher shares this module's steps: :func:`plan_sweep` → :func:`open_sweep` → claim →
:func:`execute_one` (run, write artefacts, :func:`record`) → :func:`finish_summary`. A failed
run's error is recorded with its kind (:func:`error_kind`): ``config`` when a rerun would fail
the same way, ``transient`` otherwise.
"""

from __future__ import annotations

import contextvars
import json
import logging
import multiprocessing as mp
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from . import config as cfgmod
from .registry import Experiment, RunContext, RunResult, RunSpec, get
from .store import Claim, MetricRow, ResultStore, RunRow

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext

#: how worker processes start (:func:`multiprocessing.get_context`)
StartMethod = Literal["spawn", "fork", "forkserver"]

log = logging.getLogger(__name__)

DB_NAME = "results.sqlite"


class ConfigMismatchError(ValueError):
    """The output directory holds results of a different config for this experiment."""


@dataclass
class RunSummary:
    """What :func:`run_experiment` did."""

    experiment: str
    config_hash: str
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    executed: int = 0
    failed: list[str] = field(default_factory=list)
    interrupted: int = 0
    seconds: float = 0.0
    failed_config: list[str] = field(default_factory=list)  # failed with an error a rerun cannot fix
    first_error: str = ""  # the last line of the first failed run's error
    claimed_elsewhere: list[Claim] = field(default_factory=list)  # runs live processes still hold
    threads: list[int] = field(default_factory=list)  # torch thread counts of the finished runs

    @property
    def complete(self) -> bool:
        total = sum(self.counts.values())
        return total > 0 and self.counts.get("done", 0) == total


def resolve_config(
    experiment: Experiment, overrides: Sequence[str] = (), preset: str | None = None
) -> Any:
    """The experiment's config: defaults, then the named preset, then ``overrides``."""
    base = None
    if preset is not None:
        if preset not in experiment.presets:
            raise cfgmod.ConfigError(
                f"unknown preset {preset!r} for {experiment.name}; valid presets are: "
                f"{', '.join(sorted(experiment.presets)) or '(none)'}"
            )
        base = experiment.presets[preset]
    return cfgmod.build_config(experiment.config_cls, overrides, base=base)


def config_path(out: Path, name: str) -> Path:
    return out / "configs" / f"{name}.yaml"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_and_store_config(
    out: Path, experiment: Experiment, config: Any, force: bool = False
) -> str:
    """Write ``OUT/configs/<name>.yaml``; refuse a different stored config unless ``force``."""
    path = config_path(out, experiment.name)
    new = cfgmod.to_dict(config)
    if path.exists() and not force:
        old = cfgmod.read_yaml_mapping(path, "stored config")
        lines = cfgmod.diff(old, new)
        if lines:
            raise ConfigMismatchError(
                f"output directory {str(out)!r} holds results of {experiment.name} with a different "
                f"config ({path}); differences (stored -> requested):\n  " + "\n  ".join(lines)
                + "\nuse another --out, or --force to record the new config beside the old results"
            )
    text = cfgmod.to_yaml(config)
    _write_atomic(path, text.encode())
    return cfgmod.config_hash(new)


def artefact_dir(out: Path, experiment: str, run_id: int) -> Path:
    """``OUT/artefacts/<experiment>/<run id>``: where a run writes its files."""
    return Path(out) / "artefacts" / experiment / str(run_id)


_artefact_dir = artefact_dir  # the old private name


def save_artefacts(directory: Path, result: RunResult) -> None:
    """Write a run's arrays (``arrays.npz``) and info (``info.json``) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    if result.arrays:
        tmp = directory / f".arrays.{os.getpid()}.tmp.npz"
        # values typed Any: numpy's stub checks **kwds against its allow_pickle: bool keyword too
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in result.arrays.items()}
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, directory / "arrays.npz")
    _write_atomic(directory / "info.json", json.dumps(result.info, indent=1, default=str).encode())


def load_artefacts(out: Path, experiment: str, run_id: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and info a run saved (empty when it saved none)."""
    d = artefact_dir(Path(out), experiment, run_id)
    arrays: dict[str, np.ndarray] = {}
    if (d / "arrays.npz").exists():
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    info = json.loads((d / "info.json").read_text()) if (d / "info.json").exists() else {}
    return arrays, info


# --- checks made before anything is queued ----------------------------------------------------
def check_device(device: str, *, available: bool = True) -> str:
    """``device`` if it is ``"cpu"`` or ``"cuda[:i]"`` (and, with ``available``, present here)."""
    if not isinstance(device, str) or not (device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device)):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    if available and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: torch sees no CUDA device here "
                             "(torch.cuda.is_available() is False); use --device cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return device


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is ``None`` or an int >= 1 (torch threads per process)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an int >= 1 (torch threads per process) or None, got {threads!r}")
    return int(threads)


def prepare_out(out: str | os.PathLike[str]) -> Path:
    """The output directory, created; a clear error when it is a file or cannot be written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is not a directory (a file of that name exists)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"--out {str(path)!r}: a parent of it is a file, not a directory") from None
    except NotADirectoryError:
        raise ValueError(f"--out {str(path)!r}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise ValueError(f"--out {str(path)!r} cannot be created: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(path)!r} is not writable")
    return path


@dataclass
class Sweep:
    """A resolved, validated sweep: what :func:`plan_sweep` returns (nothing written yet)."""

    experiment: Experiment
    config: Any
    seeds: list[int]
    specs: list[RunSpec]


def plan_sweep(name: str, overrides: Sequence[str] = (), preset: str | None = None,
               seeds: int | Sequence[int] | str = 1) -> Sweep:
    """Resolve and validate the config and plan the runs, touching nothing on disk.

    Every check a rerun could not get past happens here, before any run is queued: the
    config's values (:func:`~causalmtl.experiments.config.validate_config`), the data files,
    the seeds, and a plan that has runs and distinct keys.
    """
    experiment = get(name)
    seed_list = cfgmod.parse_seeds(seeds)
    config = resolve_config(experiment, overrides, preset)
    cfgmod.validate_config(config)
    if experiment.check_data is not None:
        experiment.check_data(config)
    specs = list(experiment.plan(config))
    if not specs:
        raise cfgmod.ConfigError(f"the config of {name} plans no runs (an empty list of methods?)")
    keys = [s.run_key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {name} planned duplicate run keys: {keys}")
    return Sweep(experiment, config, seed_list, specs)


class ThreadMismatchError(ValueError):
    """The results store holds runs of this config computed with another torch thread count."""


def open_sweep(store: ResultStore, out: Path, sweep: Sweep, force: bool = False,
               threads: int | None = None) -> str:
    """Store the config, insert the missing runs, release stale claims, requeue failed runs.

    ``threads``: the torch thread count the runs will use; a store whose finished runs of
    this config used another count is refused (:class:`ThreadMismatchError`) unless ``force``.
    Returns the config hash.
    """
    name = sweep.experiment.name
    chash = check_and_store_config(out, sweep.experiment, sweep.config, force)
    if threads is not None:
        counts = store.thread_counts(name, chash)
        other = {t: n for t, n in counts.items() if t != threads}
        if other and not force:
            raise ThreadMismatchError(
                f"{store.path} holds {sum(other.values())} finished run(s) of {name} computed with "
                f"{'/'.join(map(str, sorted(other)))} torch thread(s), and this call uses {threads}; the "
                "thread count changes results in the last digits, so one table would mix them: use "
                f"--threads {min(other, key=lambda t: -other[t])}, another --out, or --force to mix "
                "(each run records its count)")
        if other:
            log.warning("%s: mixing torch thread counts %s in %s (forced)", name,
                        sorted({*other, threads}), store.path)
    store.save_config(name, chash, cfgmod.to_yaml(sweep.config))
    store.add_runs(name, chash, [s.as_row(seed) for seed in sweep.seeds for s in sweep.specs])
    store.release_stale(name)
    store.retry_failed(name, chash)
    return chash


def finish_summary(summary: RunSummary, store: ResultStore, name: str, chash: str) -> None:
    """Fill the summary from the database once this call has run what it could."""
    summary.interrupted = store.release_stale(name)
    rows = store.runs(name, chash)
    summary.counts = store.status_counts(name, chash)
    summary.failed = [f"{r.run_key} seed {r.seed}" for r in rows if r.status == "failed"]
    failed = store.query("SELECT run_key, seed, error, error_kind FROM runs WHERE experiment=? AND"
                         " config_hash=? AND status='failed' ORDER BY id", (name, chash))
    summary.failed_config = [f"{r['run_key']} seed {r['seed']}" for r in failed if r["error_kind"] == "config"]
    summary.first_error = _last_line(failed[0]["error"]) if failed else ""
    summary.claimed_elsewhere = store.claimed_by_others(name, chash)
    summary.threads = sorted(store.thread_counts(name, chash))


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# --- one run -----------------------------------------------------------------------------------
#: Exceptions a rerun of the same config and data would raise again.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, LookupError, AttributeError, NotImplementedError, ZeroDivisionError,
)


def error_kind(exc: BaseException) -> str:
    """``"config"`` for an error a rerun cannot fix (a bad value, missing data), else ``"transient"``.

    Out of memory, a full disk, a lost process or node (``OSError``, ``MemoryError``,
    ``RuntimeError``) are transient: rerunning may succeed once the cause is gone.
    """
    if isinstance(exc, DETERMINISTIC_ERRORS):
        return "config"
    return "transient"


@dataclass
class Outcome:
    """What running one claimed run gave: its metrics, or its error and the error's kind."""

    ok: bool
    metrics: list[MetricRow] = field(default_factory=list)
    error: str = ""
    kind: str = ""

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def failure(cls, exc: BaseException, context: str = "") -> Outcome:
        text = "".join(traceback.format_exception(exc))
        return cls(False, error=(context + "\n" if context else "") + text, kind=error_kind(exc))


def record(store: ResultStore, row: RunRow, outcome: Outcome, experiment: str = "") -> None:
    """Write an outcome to the database: ``done`` with its metrics, or ``failed`` with its error."""
    if outcome.ok:
        store.finish(row.id, outcome.metrics)
        return
    log.error("run %s seed %d of %s failed: %s", row.run_key, row.seed, experiment or row.experiment,
              _last_line(outcome.error))
    store.fail(row.id, outcome.error, outcome.kind or "transient")


#: The run being executed in this process (:func:`current_run`), for code deep in a run.
_CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("causalmtl_run", default=None)


def current_run() -> RunContext | None:
    """The :class:`RunContext` of the run this process is executing (``None`` outside a run)."""
    return _CURRENT.get()


def execute_one(
    store: ResultStore | None, out: Path, experiment: Experiment, config: Any, row: RunRow,
    device: str = "cpu", progress: bool = False, *, write: bool = True,
    gather: Callable[[Outcome], Outcome] | None = None, tensorboard: str | os.PathLike[str] | None = None,
) -> Outcome:
    """Run one claimed run, write its artefacts and record it; every launcher runs runs here.

    Parameters
    ----------
    store : the database to record the outcome in; ``None`` records nothing (a Slurm job, or a
        rank other than 0, whose outcome the caller records)
    write : write the artefacts (rank 0 only under data parallelism)
    gather : combines this process's outcome with the other ranks' (data parallelism): a run
        that failed on any rank fails
    tensorboard : a directory for TensorBoard logs (``<dir>/<experiment>/<run id>``)

    Returns the :class:`Outcome` (truthy on success). A failing run never raises: its error is
    recorded with its kind (:func:`error_kind`) and the sweep goes on.
    """
    spec = RunSpec(run_key=row.run_key, method=row.method, dataset=row.dataset, trial=row.trial,
                   params=row.params)
    tb = None if tensorboard is None else Path(tensorboard) / experiment.name / str(row.id)
    ctx = RunContext(run_id=row.id, seed=row.seed, device=device,
                     artefact_dir=artefact_dir(out, experiment.name, row.id), progress=progress,
                     tensorboard_dir=tb)
    t0 = time.perf_counter()
    result: RunResult | None = None
    token = _CURRENT.set(ctx)
    try:
        result = experiment.run(config, spec, ctx)
        outcome = Outcome(True, list(result.metrics))
    except Exception as exc:  # the run fails, the sweep goes on
        outcome = Outcome.failure(exc)
    finally:
        _CURRENT.reset(token)
    if gather is not None:
        outcome = gather(outcome)
    if outcome.ok and write and result is not None:
        try:
            save_artefacts(ctx.artefact_dir, result)
        except Exception as exc:  # a full or read-only disk: the run is not done
            outcome = Outcome.failure(exc, f"writing the artefacts of run {row.id} to {ctx.artefact_dir} failed")
    if store is not None:
        record(store, row, outcome, experiment.name)
    if outcome.ok:
        log.info("run %s seed %d of %s done in %.1f s", row.run_key, row.seed, experiment.name,
                 time.perf_counter() - t0)
    return outcome


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _work_loop(
    store: ResultStore, out: Path, experiment: Experiment, config: Any, chash: str,
    device: str, progress: bool, total: int | None = None, tensorboard: str | None = None,
) -> tuple[int, list[str]]:
    executed = 0
    failed: list[str] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=experiment.name, unit="run", position=0)
    try:
        while True:
            row = store.claim(experiment.name, chash, threads=_torch_threads())
            if row is None:
                return executed, failed
            if bar is not None:
                bar.set_postfix_str(f"{row.run_key} seed {row.seed}")
            ok = execute_one(store, out, experiment, config, row, device, progress, tensorboard=tensorboard)
            executed += 1
            if bar is not None:
                bar.update(1)
            if not ok:
                failed.append(f"{row.run_key} seed {row.seed}")
    finally:
        if bar is not None:
            bar.close()


def _worker_main(out: str, name: str, module: str, overrides_yaml: str, device: str, threads: int,
                 tensorboard: str | None = None) -> None:
    """Entry point of a worker process: claim and run until nothing is left."""
    import importlib

    if module:
        importlib.import_module(module)
    import torch

    torch.set_num_threads(max(1, threads))
    experiment = get(name)
    config = cfgmod.from_yaml(experiment.config_cls, overrides_yaml)
    chash = cfgmod.config_hash(config)
    with ResultStore(Path(out) / DB_NAME) as store:
        _work_loop(store, Path(out), experiment, config, chash, device, False, tensorboard=tensorboard)


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seeds: int | Sequence[int] | str = 1,
    workers: int = 1,
    out: str | os.PathLike[str] = "runs",
    device: str = "cpu",
    force: bool = False,
    preset: str | None = None,
    progress: bool = False,
    start_method: StartMethod = "spawn",
    threads: int | None = 1,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunSummary:
    """Run (or resume) experiment ``name`` into ``out``; see the module docstring.

    Parameters
    ----------
    name : a registered experiment (``causalmtl list``)
    overrides : ``key=value`` config overrides (dotted keys)
    seeds : the number of seeds (0 … N−1) or an explicit list
    workers : processes running runs in parallel (1 = this process)
    out : output directory (created)
    device : ``"cpu"`` or ``"cuda"`` (or ``"cuda:1"``); not part of the config hash
    force : accept an output directory that holds a different config for this experiment, or
        runs of it computed with another thread count
    preset : a named preset of the experiment (e.g. ``"tiny"``) applied before ``overrides``
    progress : show progress bars (the CLI does; library callers usually do not)
    start_method : how worker processes start (``"spawn"``, safe with torch threads; ``"fork"``
        is faster and fine when this process has not run torch operations yet)
    threads : torch intra-op threads per process during the runs (restored afterwards); the
        default 1 is fastest for the small models here and avoids oversubscribing a shared
        machine (OpenMP threads spinning against each other); ``None`` leaves torch's setting.
        Recorded with each run: the count changes results in the last digits, so a store
        refuses runs of one config computed with different counts (unless ``force``)
    tensorboard : write each training's TensorBoard logs under ``<tensorboard>/<name>/<run id>``
        (needs the ``tensorboard`` extra)

    Raises ``ValueError`` (before anything is queued) for a bad config value, device, thread
    count, seed list, output directory, or missing data.
    """
    t0 = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or int(workers) < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    check_device(device)
    threads = check_threads(threads)
    sweep = plan_sweep(name, overrides, preset, seeds)
    experiment, config = sweep.experiment, sweep.config
    out = prepare_out(out)
    workers = int(workers)
    if workers == 1:
        eff_threads = threads if threads is not None else _torch_threads()
    else:
        eff_threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
    tb = None if tensorboard is None else str(tensorboard)
    summary = RunSummary(experiment=name, config_hash="", out=out)
    with ResultStore(out / DB_NAME) as store:
        chash = open_sweep(store, out, sweep, force, eff_threads)
        summary.config_hash = chash
        todo = store.status_counts(name, chash)
        n_todo = todo.get("pending", 0) + todo.get("interrupted", 0)
        log.info("%s: %d runs to do (%s)", name, n_todo, todo)
        workers = min(workers, max(1, n_todo))
        if workers == 1:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(eff_threads)
            try:
                summary.executed, summary.failed = _work_loop(
                    store, out, experiment, config, chash, device, progress, total=n_todo, tensorboard=tb
                )
            finally:
                torch.set_num_threads(before)
        else:
            # typeshed types get_context(str) as BaseContext, which lacks .Process; every start
            # method's context (the three of StartMethod) has it
            ctx = cast("SpawnContext | ForkContext | ForkServerContext", mp.get_context(start_method))
            procs = [
                ctx.Process(
                    target=_worker_main,
                    args=(str(out), name, experiment.module, cfgmod.to_yaml(config), device, eff_threads, tb),
                    daemon=False,
                )
                for _ in range(workers)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            dead = [p.exitcode for p in procs if p.exitcode != 0]
            if dead:
                log.warning("%d worker(s) ended abnormally (exit codes %s)", len(dead), dead)
        finish_summary(summary, store, name, chash)
        if workers > 1:  # the workers' own counts are not reported back
            summary.executed = max(summary.executed, sum(1 for r in store.runs(name, chash) if r.attempts > 0))
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = [
    "ConfigMismatchError",
    "DB_NAME",
    "Outcome",
    "RunSummary",
    "Sweep",
    "ThreadMismatchError",
    "artefact_dir",
    "check_and_store_config",
    "check_device",
    "check_threads",
    "current_run",
    "error_kind",
    "execute_one",
    "finish_summary",
    "open_sweep",
    "plan_sweep",
    "prepare_out",
    "record",
    "load_artefacts",
    "resolve_config",
    "run_experiment",
    "save_artefacts",
]
