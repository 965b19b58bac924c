"""causalmtl.experiments: named experiments, typed configs, the results database, sweeps, the report.

The modules here are the infrastructure (and the helpers experiments share: ``common``,
``hparams``, ``reporting``); the built-in experiments are in :mod:`causalmtl.experiments.builtin`,
which nothing here imports (the registry loads them by name).

Example (not run as a doctest: it trains models)::

    from causalmtl.experiments import run_experiment
    run_experiment("quickstart", ["train.epochs=2"], seeds=2, out="runs")
"""

from . import hparams
from .config import ConfigError, build_config, config_hash, parse_seeds, to_yaml, valid_keys
from .registry import (
    DEFAULT_EXPERIMENT,
    Experiment,
    MissingDataError,
    RunContext,
    RunResult,
    RunSpec,
    UnknownExperimentError,
    all_experiments,
    get,
    names,
    register,
)
from .report import ReportContext, build_report
from .runner import ConfigMismatchError, RunSummary, load_artefacts, resolve_config, run_experiment
from .store import MetricRow, ResultStore, RunRow

__all__ = [
    "DEFAULT_EXPERIMENT",
    "ConfigError",
    "ConfigMismatchError",
    "Experiment",
    "MetricRow",
    "MissingDataError",
    "ResultStore",
    "ReportContext",
    "RunContext",
    "RunResult",
    "RunRow",
    "RunSpec",
    "RunSummary",
    "UnknownExperimentError",
    "all_experiments",
    "build_config",
    "build_report",
    "config_hash",
    "get",
    "hparams",
    "load_artefacts",
    "names",
    "parse_seeds",
    "register",
    "resolve_config",
    "run_experiment",
    "to_yaml",
    "valid_keys",
]
