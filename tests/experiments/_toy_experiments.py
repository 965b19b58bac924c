"""A tiny, fast experiment for testing the runner, the store and the report machinery.

Imported by the tests and (through the runner's ``module`` hand-off) by spawned workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from causalmtl.experiments import MetricRow, RunResult, RunSpec, register
from causalmtl.experiments.registry import Experiment
from causalmtl.report import Table, Text


@dataclass
class Inner:
    scale: float = 1.0


@dataclass
class ToyConfig:
    methods: list[str] = field(default_factory=lambda: ["mtl", "ours"])
    n_trials: int = 1
    sleep: float = 0.0
    fail_method: str = ""
    fail_error: str = "runtime"  # "runtime" (a rerun may fix it) or "value" (a rerun cannot)
    inner: Inner = field(default_factory=Inner)


def plan(cfg: ToyConfig) -> list[RunSpec]:
    return [
        RunSpec(run_key=f"{m}/trial={k}", method=m, dataset="toy", trial=k, params={"k": k})
        for m in cfg.methods
        for k in range(cfg.n_trials)
    ]


def value_of(method: str, seed: int, trial: int, task: int, scale: float) -> float:
    """The metric a toy run reports: a known function of its identity."""
    return scale * (1.0 + 0.1 * task + 0.01 * seed + (0.05 if method == "ours" else 0.0) + 0.001 * trial)


def run(cfg: ToyConfig, spec: RunSpec, ctx) -> RunResult:
    if spec.method == cfg.fail_method:
        raise (ValueError if cfg.fail_error == "value" else RuntimeError)("planned failure")
    time.sleep(cfg.sleep)
    metrics = [
        MetricRow("acc", value_of(spec.method, ctx.seed, spec.trial, t, cfg.inner.scale), task=f"t{t}", split=split)
        for t in range(2)
        for split in ("valid", "test")
    ]
    return RunResult(metrics=metrics, arrays={"x": np.arange(3) + ctx.seed}, info={"key": spec.run_key})


def report(ctx) -> list:
    return [Text("toy report"), Table(ctx.frame[["method", "seed", "name", "task", "split", "value"]])]


TOY = register(Experiment(
    name="toy-sweep",
    description="a fast fake experiment for tests",
    expected_seconds=1,
    config_cls=ToyConfig,
    plan=plan,
    run=run,
    report=report,
    presets={"tiny": {"sleep": 0.0}},
))
