"""Running experiments: configs on disk, the sweep, workers, idempotent reruns.

Layout of an output directory::

    OUT/results.sqlite                 the database (store.py)
    OUT/configs/<experiment>.yaml      the config the results belong to
    OUT/artefacts/<experiment>/<run id>/arrays.npz, info.json
    OUT/report.html, OUT/report.md, OUT/figures/*.png   (written by causalmtl.report)

:func:`run_experiment` resolves the config, refuses an output directory whose stored config
differs (unless ``force``; the error lists what differs), inserts the missing runs, marks runs
left ``running`` by dead processes as interrupted, and executes every claimable run, in this
process (``workers=1``) or in ``workers`` spawned processes that claim runs from the database
one at a time. Finished runs are never redone; interrupted and failed ones are redone.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import config as cfgmod
from .registry import Experiment, RunContext, RunResult, RunSpec, get
from .store import ResultStore, RunRow

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
        import yaml

        old = yaml.safe_load(path.read_text()) or {}
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


def _artefact_dir(out: Path, experiment: str, run_id: int) -> Path:
    return out / "artefacts" / experiment / str(run_id)


def save_artefacts(directory: Path, result: RunResult) -> None:
    """Write a run's arrays (``arrays.npz``) and info (``info.json``) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    if result.arrays:
        tmp = directory / f".arrays.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in result.arrays.items()})
        os.replace(tmp, directory / "arrays.npz")
    _write_atomic(directory / "info.json", json.dumps(result.info, indent=1, default=str).encode())


def load_artefacts(out: Path, experiment: str, run_id: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and info a run saved (empty when it saved none)."""
    d = _artefact_dir(Path(out), experiment, run_id)
    arrays: dict[str, np.ndarray] = {}
    if (d / "arrays.npz").exists():
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    info = json.loads((d / "info.json").read_text()) if (d / "info.json").exists() else {}
    return arrays, info


def execute_one(
    store: ResultStore, out: Path, experiment: Experiment, config: Any, row: RunRow,
    device: str = "cpu", progress: bool = False,
) -> bool:
    """Run one claimed run and record it. Returns True on success (failures are recorded)."""
    spec = RunSpec(run_key=row.run_key, method=row.method, dataset=row.dataset, trial=row.trial,
                   params=row.params)
    ctx = RunContext(run_id=row.id, seed=row.seed, device=device,
                     artefact_dir=_artefact_dir(out, experiment.name, row.id), progress=progress)
    t0 = time.perf_counter()
    try:
        result = experiment.run(config, spec, ctx)
        save_artefacts(ctx.artefact_dir, result)
    except Exception as exc:  # the run fails, the sweep goes on
        log.error("run %s seed %d of %s failed: %s", row.run_key, row.seed, experiment.name, exc)
        store.fail(row.id, "".join(traceback.format_exception(exc)))
        return False
    store.finish(row.id, result.metrics)
    log.info("run %s seed %d of %s done in %.1f s", row.run_key, row.seed, experiment.name,
             time.perf_counter() - t0)
    return True


def _work_loop(
    store: ResultStore, out: Path, experiment: Experiment, config: Any, chash: str,
    device: str, progress: bool, total: int | None = None,
) -> tuple[int, list[str]]:
    executed, failed = 0, []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=experiment.name, unit="run", position=0)
    try:
        while True:
            row = store.claim(experiment.name, chash)
            if row is None:
                return executed, failed
            if bar is not None:
                bar.set_postfix_str(f"{row.run_key} seed {row.seed}")
            ok = execute_one(store, out, experiment, config, row, device, progress)
            executed += 1
            if bar is not None:
                bar.update(1)
            if not ok:
                failed.append(f"{row.run_key} seed {row.seed}")
    finally:
        if bar is not None:
            bar.close()


def _worker_main(out: str, name: str, module: str, overrides_yaml: str, device: str, threads: int) -> None:
    """Entry point of a worker process: claim and run until nothing is left."""
    import importlib

    if module:
        importlib.import_module(module)
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    experiment = get(name)
    config = cfgmod.from_yaml(experiment.config_cls, overrides_yaml)
    chash = cfgmod.config_hash(config)
    with ResultStore(Path(out) / DB_NAME) as store:
        _work_loop(store, Path(out), experiment, config, chash, device, False)


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seeds: int | Sequence[int] | str = 1,
    workers: int = 1,
    out: str | os.PathLike = "runs",
    device: str = "cpu",
    force: bool = False,
    preset: str | None = None,
    progress: bool = False,
    start_method: str = "spawn",
    threads: int | None = 1,
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
    force : accept an output directory that holds a different config for this experiment
    preset : a named preset of the experiment (e.g. ``"tiny"``) applied before ``overrides``
    progress : show progress bars (the CLI does; library callers usually do not)
    start_method : how worker processes start (``"spawn"``, safe with torch threads; ``"fork"``
        is faster and fine when this process has not run torch operations yet)
    threads : torch intra-op threads per process during the runs (restored afterwards); the
        default 1 is fastest for the small models here and avoids oversubscribing a shared
        machine (OpenMP threads spinning against each other); ``None`` leaves torch's setting
    """
    t0 = time.perf_counter()
    experiment = get(name)
    seed_list = cfgmod.parse_seeds(seeds)
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    config = resolve_config(experiment, overrides, preset)
    if experiment.check_data is not None:
        experiment.check_data(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chash = check_and_store_config(out, experiment, config, force)
    specs = list(experiment.plan(config))
    keys = [s.run_key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {name} planned duplicate run keys: {keys}")
    summary = RunSummary(experiment=name, config_hash=chash, out=out)
    with ResultStore(out / DB_NAME) as store:
        store.save_config(name, chash, cfgmod.to_yaml(config))
        store.add_runs(name, chash, [s.as_row(seed) for seed in seed_list for s in specs])
        store.release_stale(name)
        store.retry_failed(name, chash)
        todo = store.status_counts(name, chash)
        n_todo = todo.get("pending", 0) + todo.get("interrupted", 0)
        log.info("%s: %d runs to do (%s)", name, n_todo, todo)
        workers = min(int(workers), max(1, n_todo))
        if workers == 1:
            import torch

            before = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(max(1, int(threads)))
            try:
                summary.executed, summary.failed = _work_loop(
                    store, out, experiment, config, chash, device, progress, total=n_todo
                )
            finally:
                torch.set_num_threads(before)
        else:
            ctx = mp.get_context(start_method)
            if threads is None:
                threads = max(1, (os.cpu_count() or 1) // workers)
            procs = [
                ctx.Process(
                    target=_worker_main,
                    args=(str(out), name, experiment.module, cfgmod.to_yaml(config), device, threads),
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
        summary.interrupted = store.release_stale(name)
        rows = store.runs(name, chash)
        summary.counts = store.status_counts(name, chash)
        summary.failed = [f"{r.run_key} seed {r.seed}" for r in rows if r.status == "failed"]
        summary.executed = max(summary.executed, sum(1 for r in rows if r.attempts > 0))
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = [
    "ConfigMismatchError",
    "DB_NAME",
    "RunSummary",
    "check_and_store_config",
    "execute_one",
    "load_artefacts",
    "resolve_config",
    "run_experiment",
    "save_artefacts",
]
