"""Where the runs of a sweep execute: here (``local``, also under ``torchrun``) or on Slurm.

``causalmtl run EXP --launcher local|slurm`` calls :func:`launch`. In every case the results
database ``OUT/results.sqlite`` is the single source of truth: the runs of the config are
inserted once, finished runs are never redone, a run's metrics are written in the transaction
that marks it ``done``, and only one process writes to the database.

``local``
    In one process, or in ``--workers`` processes (:func:`~causalmtl.experiments.runner.run_experiment`).
    Started by ``torchrun`` (``WORLD_SIZE > 1``) the processes train every run together,
    data-parallel (:func:`run_data_parallel`): rank 0 claims the runs and broadcasts them, every
    rank runs them (the trainer shards the batches), and rank 0 alone writes artefacts, results
    and the report.
``slurm``
    Each claimable run becomes one job submitted with `submitit
    <https://github.com/facebookincubator/submitit>`_ (optional dependency, extra
    ``causalmtl[cluster]``), as one job array, with resources from a
    :class:`ClusterResources` config (``--resources FILE.yaml`` and ``--cluster KEY=VALUE``).
    The submitting process claims the runs (so a concurrent call skips them), waits for the
    jobs and records each result as its job ends; jobs write only their artefact files
    (SQLite must not be written from several hosts over a network file system). A job with
    ``tasks_per_node × nodes > 1`` trains its run data-parallel over its tasks (submitit
    exports the ``torch.distributed`` variables). If the submitting process dies, its claimed
    runs become ``interrupted`` and the next call redoes them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as cfgmod
from .registry import get
from .runner import (
    DB_NAME,
    Outcome,
    RunSummary,
    check_device,
    check_threads,
    execute_one,
    finish_summary,
    open_sweep,
    plan_sweep,
    prepare_out,
    record,
    run_experiment,
)
from .store import ResultStore, RunRow

log = logging.getLogger(__name__)

LAUNCHERS: tuple[str, ...] = ("local", "slurm")

__all__ = [
    "LAUNCHERS",
    "ClusterResources",
    "launch",
    "load_resources",
    "run_data_parallel",
    "run_slurm",
]


@dataclass
class ClusterResources:
    """Resources of every job of a ``--launcher slurm`` sweep (submitit parameters).

    ``cluster``: ``"slurm"``, ``"local"`` (submitit's local executor: subprocesses on this
    machine, for testing), ``"debug"`` (in this process) or ``""`` (Slurm when ``sbatch`` is
    found, else local). ``setup``: shell lines run before each job (``module load …``,
    ``source .venv/bin/activate``). ``folder``: submitit's logs and pickles (default
    ``OUT/submitit``). ``poll_s``: how often the submitter checks the jobs.
    """

    cluster: str = ""
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    timeout_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: float = 8.0
    array_parallelism: int = 64
    setup: list[str] = field(default_factory=list)
    folder: str = ""
    job_name: str = "causalmtl"
    poll_s: float = 5.0

    def validate(self) -> None:
        if self.cluster not in ("", "slurm", "local", "debug"):
            raise ValueError(f"resources.cluster must be '', 'slurm', 'local' or 'debug', got {self.cluster!r}")
        for name in ("timeout_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"resources.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.gpus_per_node < 0 or self.mem_gb <= 0 or self.poll_s <= 0:
            raise ValueError(
                f"resources need gpus_per_node >= 0, mem_gb > 0 and poll_s > 0, got "
                f"{self.gpus_per_node!r}, {self.mem_gb!r}, {self.poll_s!r}")

    def executor_parameters(self) -> dict[str, Any]:
        """Keyword arguments of ``submitit.AutoExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "name": self.job_name, "timeout_min": int(self.timeout_min), "nodes": int(self.nodes),
            "tasks_per_node": int(self.tasks_per_node), "cpus_per_task": int(self.cpus_per_task),
            "mem_gb": float(self.mem_gb), "slurm_array_parallelism": int(self.array_parallelism),
        }
        if self.gpus_per_node:
            params["gpus_per_node"] = int(self.gpus_per_node)
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        if self.setup:
            params["slurm_setup"] = list(self.setup)
        return params


def load_resources(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> ClusterResources:
    """:class:`ClusterResources` from a YAML file (optional) and ``key=value`` overrides."""
    base: Mapping[str, Any] | None = None
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"resources file {str(p)!r} does not exist")
        base = cfgmod.read_yaml_mapping(p, "resources")
    res = cfgmod.build_config(ClusterResources, overrides, base=base)
    res.validate()
    return res


# --- torchrun ----------------------------------------------------------------------------------
def run_data_parallel(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seeds: int | Sequence[int] | str = 1,
    out: str | os.PathLike[str] = "runs",
    device: str = "cpu",
    force: bool = False,
    preset: str | None = None,
    progress: bool = False,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunSummary:
    """Run experiment ``name`` with every process of the ``torch.distributed`` group on each run.

    Called on every rank (``torchrun … causalmtl run …``). Rank 0 owns the database: it
    claims the next run and broadcasts it; all ranks execute it (their trainers shard the
    batches and all-reduce); rank 0 writes the artefacts and the results. A run that fails
    on any rank is recorded as failed (with every rank's error). Returns the summary (the
    counts are rank 0's; other ranks return the same summary broadcast from rank 0).
    """
    from ..train.distributed import broadcast_object, setup

    check_device(device)
    dp = setup(device)
    main = dp.is_main
    dev = str(dp.device)
    t0 = time.perf_counter()
    experiment = get(name)
    store = None
    summary = RunSummary(experiment=name, config_hash="", out=Path(out))
    prepared: tuple[Any, str] | BaseException
    if main:
        try:
            sweep = plan_sweep(name, overrides, preset, seeds)
            out = prepare_out(out)
            store = ResultStore(out / DB_NAME)
            prepared = (sweep.config, open_sweep(store, out, sweep, force, _threads()))
        except BaseException as exc:  # every rank must learn of it, or the others wait forever
            prepared = exc
    else:
        prepared = RuntimeError("not set")
    prepared = broadcast_object(prepared)
    if isinstance(prepared, BaseException):
        if store is not None:
            store.close()
        raise prepared
    config, chash = prepared
    out = Path(out)
    summary.config_hash = chash
    gather = _gather_outcomes if dp.world_size > 1 else None
    try:
        while True:
            row = store.claim(name, chash, threads=_threads()) if store is not None else None
            row = broadcast_object(row)
            if row is None:
                break
            execute_one(store, out, experiment, config, row, dev, progress and main, write=main,
                        gather=gather, tensorboard=tensorboard)
            summary.executed += 1
        if store is not None:
            finish_summary(summary, store, name, chash)
    finally:
        if store is not None:
            store.close()
    summary.seconds = time.perf_counter() - t0
    shared: RunSummary = broadcast_object(summary)  # rank 0's summary on every rank
    return shared


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _gather_outcomes(outcome: Outcome) -> Outcome:
    """Every rank's outcome of a run, combined: it failed if it failed on any rank."""
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (outcome.error, outcome.kind))
    bad = [(r, e, k) for r, (e, k) in enumerate(parts) if e]
    if not bad:
        return outcome
    kind = "transient" if any(k != "config" for _, _, k in bad) else "config"
    return Outcome(False, error="\n".join(f"rank {r}: {e}" for r, e, _ in bad), kind=kind)


# --- slurm (submitit) ----------------------------------------------------------------------------
def _job_main(out: str, name: str, module: str, config_yaml: str, row: RunRow, device: str,
              threads: int | None) -> Outcome:
    """One Slurm job: run one claimed run (:func:`~causalmtl.experiments.runner.execute_one`),
    write its artefacts; return its :class:`~causalmtl.experiments.runner.Outcome`.

    Runs on the compute node. With several tasks it trains data-parallel (submitit exports
    ``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); rank 0's return value is the
    job's result. Never touches the database: the submitter records the outcome.
    """
    import importlib

    import torch

    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    except (ImportError, RuntimeError):  # not inside a submitit job (debug executor)
        pass
    if module:
        importlib.import_module(module)
    experiment = get(name)
    config = cfgmod.from_yaml(experiment.config_cls, config_yaml)
    from ..train.distributed import is_main_process

    return execute_one(None, Path(out), experiment, config, row, device, False, write=is_main_process())


def _executor(res: ClusterResources, folder: Path) -> Any:
    try:
        import submitit
    except ImportError:
        raise ImportError(
            "--launcher slurm needs the optional dependency submitit: pip install 'causalmtl[cluster]'"
        ) from None
    executor = submitit.AutoExecutor(folder=folder, cluster=res.cluster or None)
    executor.update_parameters(**res.executor_parameters())
    return executor


def run_slurm(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seeds: int | Sequence[int] | str = 1,
    out: str | os.PathLike[str] = "runs",
    device: str = "cpu",
    force: bool = False,
    preset: str | None = None,
    resources: ClusterResources | None = None,
    threads: int | None = 1,
) -> RunSummary:
    """Submit every claimable run of experiment ``name`` as a job, wait, record the results.

    See the module docstring. The database is written by this process only; each result is
    recorded as soon as its job ends, so an interrupted wait keeps the runs that finished.
    """
    res = resources or ClusterResources()
    res.validate()
    t0 = time.perf_counter()
    check_device(device, available=False)  # the jobs' nodes have the GPUs, not necessarily this one
    threads = check_threads(threads)
    sweep = plan_sweep(name, overrides, preset, seeds)
    experiment, config = sweep.experiment, sweep.config
    out = prepare_out(out)
    summary = RunSummary(experiment=name, config_hash="", out=out)
    with ResultStore(out / DB_NAME) as store:
        chash = open_sweep(store, out, sweep, force, threads)
        summary.config_hash = chash
        rows: list[RunRow] = []
        while (row := store.claim(name, chash, threads=threads)) is not None:
            rows.append(row)
        if rows:
            executor = _executor(res, Path(res.folder) if res.folder else out / "submitit")
            yaml_text = cfgmod.to_yaml(config)
            jobs: list[Any] = []
            try:
                with executor.batch():
                    for row in rows:
                        jobs.append(executor.submit(_job_main, str(out.resolve()), name, experiment.module,
                                                    yaml_text, row, device, threads))
                log.info("%s: submitted %d job(s): %s", name, len(jobs), [j.job_id for j in jobs])
                _collect(store, name, list(zip(jobs, rows)), res.poll_s, summary)
            except BaseException:
                for job in jobs:
                    if not job.done():
                        job.cancel(check=False)
                pending = [r.id for r in rows if _status(store, r.id) == "running"]
                store.set_status(pending, "interrupted")
                raise
        finish_summary(summary, store, name, chash)
    summary.seconds = time.perf_counter() - t0
    return summary


def _status(store: ResultStore, run_id: int) -> str:
    rows = store.query("SELECT status FROM runs WHERE id=?", (run_id,))
    return rows[0]["status"] if rows else ""


def _collect(store: ResultStore, name: str, pairs: list[tuple[Any, RunRow]], poll_s: float,
             summary: RunSummary) -> None:
    """Record each job's result as it ends (``done`` with metrics, or ``failed``)."""
    waiting = list(pairs)
    while waiting:
        still = []
        for job, row in waiting:
            if not job.done():
                still.append((job, row))
                continue
            summary.executed += 1
            try:
                outcome = job.result()
            except Exception as exc:  # the job itself died (timeout, node failure, OOM)
                outcome = Outcome(False, error=f"job {job.job_id} ended abnormally: {exc}", kind="transient")
            record(store, row, outcome, name)
        waiting = still
        if waiting:
            time.sleep(poll_s)


# --- dispatch --------------------------------------------------------------------------------
def launch(
    launcher: str,
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
    threads: int | None = 1,
    resources: ClusterResources | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunSummary:
    """Run experiment ``name`` with ``launcher`` (``"local"`` or ``"slurm"``; module docstring)."""
    from ..train.distributed import env_world_size

    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    threads = check_threads(threads)
    if launcher == "slurm":
        if tensorboard is not None:
            raise ValueError("--tensorboard applies to --launcher local only")
        return run_slurm(name, overrides, seeds=seeds, out=out, device=device, force=force,
                         preset=preset, resources=resources, threads=threads)
    if env_world_size() > 1:
        if int(workers) != 1:
            raise ValueError(f"workers must be 1 under torchrun (every process trains each run), got {workers}")
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        return run_data_parallel(name, overrides, seeds=seeds, out=out, device=device, force=force,
                                 preset=preset, progress=progress, tensorboard=tensorboard)
    return run_experiment(name, overrides, seeds=seeds, workers=workers, out=out, device=device,
                          force=force, preset=preset, progress=progress, threads=threads,
                          tensorboard=tensorboard)
