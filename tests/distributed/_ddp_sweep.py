"""The tiny sweep experiment ``ddp-toy`` (two runs that train with the Trainer).

Imported by the ranks of the torchrun-sweep test and, through the runner's module hand-off,
by submitit's local jobs (``PYTHONPATH`` holds this directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from _ddp_common import train

from causalmtl.experiments import MetricRow, RunResult, RunSpec
from causalmtl.experiments.registry import Experiment, register


@dataclass
class ToyConfig:
    methods: list[str] = field(default_factory=lambda: ["erm", "pcgrad"])
    epochs: int = 1


def plan(cfg: ToyConfig) -> list[RunSpec]:
    return [RunSpec(run_key=f"{m}", method=m, dataset="ddp-tiny") for m in cfg.methods]


def run(cfg: ToyConfig, spec: RunSpec, ctx) -> RunResult:
    method, result, _ = train(spec.method, epochs=cfg.epochs, checkpoint_dir=str(ctx.artefact_dir / "ckpt"))
    metrics = [MetricRow("valid_loss", float(result.history["valid/loss"].iloc[-1]), split="valid",
                         higher_is_better=False)]
    return RunResult(metrics=metrics, info={"pid": os.getpid()})


EXPERIMENT = register(Experiment(name="ddp-toy", description="tiny DDP test sweep", expected_seconds=1,
                                 config_cls=ToyConfig, plan=plan, run=run))
