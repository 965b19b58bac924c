"""The registry of named experiments.

An :class:`Experiment` bundles a name, a one-line description, its expected run time on two
CPU cores, a config dataclass, a *plan* (the list of :class:`RunSpec` units of work for a
config; each is run once per seed), a *run* function ``run(config, spec, ctx) -> RunResult``
and a *report* function that turns the database and the artefact files into report blocks.

Experiments register themselves with :func:`register` when their module is imported. The
built-in modules are listed in :data:`BUILTIN_MODULES` and imported on first use; a module
that fails to import (a missing optional dependency) is logged and skipped, so the others stay
usable. Add a module to :data:`BUILTIN_MODULES` (one line) to add an experiment.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import MetricRow

if TYPE_CHECKING:  # the report module reads the registry; only its types are needed here
    from ..report.blocks import Block
    from .report import ReportContext

log = logging.getLogger(__name__)

#: Modules defining the built-in experiments, imported on first use of the registry.
BUILTIN_MODULES: tuple[str, ...] = (
    "causalmtl.experiments.builtin.quickstart",
    "causalmtl.experiments.builtin.gmtl_toy",
    "causalmtl.experiments.builtin.gmtl_shift",
    "causalmtl.experiments.builtin.multi_sem",
    "causalmtl.experiments.builtin.mtcrl_digits",
    "causalmtl.experiments.builtin.movielens",
    "causalmtl.experiments.builtin.yeast_gmtl",
    "causalmtl.experiments.builtin.unknown_q",
    "causalmtl.experiments.builtin.many_tasks",
    "causalmtl.experiments.builtin.gmtl_images",
    "causalmtl.experiments.builtin.dense_benchmarks",
)

#: The experiment ``causalmtl run`` runs when none is named.
DEFAULT_EXPERIMENT = "quickstart"


class UnknownExperimentError(ValueError):
    """An experiment name that is not registered."""


try:  # one class for "data files absent", shared with the data loaders
    from ..data._sources import MissingDataError
except ImportError:  # pragma: no cover - the data package is part of the library

    class MissingDataError(FileNotFoundError, ValueError):  # type: ignore[no-redef]
        """An experiment needs data files that are absent (the message says which and where)."""


@dataclass(frozen=True)
class RunSpec:
    """One unit of work of an experiment (run once per seed).

    ``run_key`` identifies the unit within its experiment and config (e.g.
    ``"method=mtl/trial=0"``); ``params`` holds anything else the run function needs
    (hyperparameters, a sweep value) and is stored as JSON in the database.
    """

    run_key: str
    method: str = ""
    dataset: str = ""
    trial: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_row(self, seed: int) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "method": self.method,
            "dataset": self.dataset,
            "trial": self.trial,
            "seed": seed,
            "params": dict(self.params),
        }


@dataclass
class RunContext:
    """What a run function gets besides its config and spec."""

    run_id: int
    seed: int
    device: str
    artefact_dir: Path
    progress: bool = False
    tensorboard_dir: Path | None = None  # ``causalmtl run --tensorboard DIR``: this run's log directory


@dataclass
class RunResult:
    """What a run function returns.

    ``metrics`` become rows of the database; ``arrays`` are written to
    ``<artefact_dir>/arrays.npz`` and ``info`` (JSON-able) to ``<artefact_dir>/info.json``,
    both before the run is marked done. The report reads only these.
    """

    metrics: list[MetricRow] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """A named, runnable experiment (see the module docstring)."""

    name: str
    description: str
    expected_seconds: float
    config_cls: type[Any]  # the experiment's config dataclass; plan / run / check_data take one
    plan: Callable[[Any], Sequence[RunSpec]]
    run: Callable[[Any, RunSpec, RunContext], RunResult]
    report: Callable[[ReportContext], Sequence[Block]] | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    check_data: Callable[[Any], None] | None = None
    reproduces: str = ""

    @property
    def module(self) -> str:
        """The dotted path of the module that defines :attr:`run` (workers import it by name)."""
        module: str = getattr(self.run, "__module__", "")
        return module


_REGISTRY: dict[str, Experiment] = {}
_LOADED = False


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (re-registering the same name replaces it)."""
    if not experiment.name or " " in experiment.name:
        raise ValueError(f"experiment name must be a non-empty word, got {experiment.name!r}")
    _REGISTRY[experiment.name] = experiment
    return experiment


def load_builtins() -> None:
    """Import the modules of :data:`BUILTIN_MODULES` once (each registers its experiments)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for name in BUILTIN_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional experiment must not break the others
            log.warning("experiment module %s could not be imported: %s", name, exc)


def get(name: str) -> Experiment:
    """The experiment called ``name``; the error lists the registered names."""
    load_builtins()
    if name not in _REGISTRY:
        raise UnknownExperimentError(
            f"unknown experiment {name!r}; valid experiments are: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def names() -> list[str]:
    """Registered experiment names, in registration order."""
    load_builtins()
    return list(_REGISTRY)


def all_experiments() -> list[Experiment]:
    load_builtins()
    return list(_REGISTRY.values())


def format_seconds(seconds: float) -> str:
    """``75`` → ``"1 min 15 s"``; ``8`` → ``"8 s"``."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min" + (f" {s} s" if s else "")
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


__all__ = [
    "BUILTIN_MODULES",
    "DEFAULT_EXPERIMENT",
    "Experiment",
    "MissingDataError",
    "RunContext",
    "RunResult",
    "RunSpec",
    "UnknownExperimentError",
    "all_experiments",
    "format_seconds",
    "get",
    "load_builtins",
    "names",
    "register",
]
