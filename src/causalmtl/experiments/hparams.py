"""Hyperparameters per method: documented defaults and a deterministic random search.

Trial 0 of every method is its documented default. Trial ``k > 0`` draws every
hyperparameter from its search distribution with a generator seeded by
``(crc32(method), crc32(dataset), k)`` — never by the run seed, so all seeds of a trial share
the same hyperparameters and the same trial is drawn on every machine and every rerun (in the
spirit of DomainBed's ``hparams_registry``). :func:`select_best_trial` picks, per method, the
trial with the best mean *validation* metric over seeds; test metrics are never looked at.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its default, a sampler for random search, and what it does."""

    default: Any
    sample: Callable[[np.random.Generator], Any]
    doc: str


def log_uniform(low: float, high: float) -> Callable[[np.random.Generator], float]:
    """A sampler of ``10 ** U(log10 low, log10 high)``."""
    lo, hi = np.log10(low), np.log10(high)
    return lambda rng: float(10 ** rng.uniform(lo, hi))


def uniform(low: float, high: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(low, high))


def choice(values: list[Any]) -> Callable[[np.random.Generator], Any]:
    return lambda rng: values[int(rng.integers(len(values)))]


_COMMON: dict[str, HParam] = {
    "lr": HParam(1e-3, log_uniform(1e-4, 1e-2), "Adam learning rate (trainer)"),
    "weight_decay": HParam(0.0, choice([0.0, 1e-5, 1e-4, 1e-3]), "L2 regularisation (trainer)"),
}

#: Hyperparameters applied to the trainer or the model rather than to the method.
TRAINER_KEYS: frozenset[str] = frozenset({"lr", "weight_decay"})
MODEL_KEYS: frozenset[str] = frozenset({"stitch_lr_mult"})

#: The registry: method family → hyperparameter name → :class:`HParam`. Names other than
#: :data:`TRAINER_KEYS` / :data:`MODEL_KEYS` are the method class's own ``HPARAMS`` names.
REGISTRY: dict[str, dict[str, HParam]] = {
    "stl": dict(_COMMON),
    "nps": dict(_COMMON),
    "mtl": dict(_COMMON),
    "shared": dict(_COMMON),
    "mmoe": dict(_COMMON),
    "fps": dict(_COMMON),
    "cross_stitch": {
        **_COMMON,
        "stitch_lr_mult": HParam(100.0, log_uniform(10.0, 1000.0), "learning-rate multiplier of the stitch units"),
    },
    "pcgrad": dict(_COMMON),
    "gradvac": {
        **_COMMON,
        "beta": HParam(0.01, log_uniform(1e-3, 1e-1), "EMA rate of GradVac's cosine targets"),
    },
    "irm": {
        **_COMMON,
        "lambda": HParam(1.0, log_uniform(1e-2, 1e2), "IRM penalty weight after annealing"),
        "anneal_steps": HParam(0, choice([0, 50, 100, 500]), "steps with the warm-up weight"),
    },
    "vrex": {
        **_COMMON,
        "lambda": HParam(1.0, log_uniform(1e-2, 1e2), "VREx penalty weight after annealing"),
        "anneal_steps": HParam(0, choice([0, 50, 100, 500]), "steps with the warm-up weight"),
    },
    "dann": {
        **_COMMON,
        "lambda_max": HParam(1.0, log_uniform(1e-2, 1.0), "final gradient-reversal strength λ"),
        "weight": HParam(1.0, log_uniform(1e-1, 1e1), "weight of the discriminator loss"),
    },
    "mtcrl": {
        **_COMMON,
        "lambda_decor": HParam(1e-4, log_uniform(1e-5, 1e-3), "decorrelation weight (Eq. 2); Eq. 2 sums "
                              "C(K,2)(d/K)^2 squared correlations, see docs/mtcrl.md"),
        "lambda_sps": HParam(0.01, log_uniform(1e-4, 1e-1), "graph sparsity weight (Eq. 3)"),
        "lambda_bal": HParam(0.1, log_uniform(1e-3, 1.0), "graph balance weight (Eq. 3)"),
        "lambda_girm": HParam(1.0, log_uniform(1e-2, 1e2), "G-IRM weight (Eq. 7)"),
        "graph_lr_mult": HParam(100.0, log_uniform(10.0, 300.0), "learning-rate multiplier of the graph "
                                "logits θ (at 1, A stays near 0.5; docs/mtcrl.md)"),
    },
}


def _base(method: str) -> str:
    """``"mtcrl-var"`` → ``"mtcrl"``: variants share their family's hyperparameters."""
    if method in REGISTRY:
        return method
    head = method.replace("-", "_").split("_")[0]
    if head in REGISTRY:
        return head
    raise ValueError(f"unknown method {method!r} for hyperparameters; known: {', '.join(sorted(REGISTRY))}")


def defaults(method: str) -> dict[str, Any]:
    """The documented default hyperparameters of ``method``."""
    return {k: p.default for k, p in REGISTRY[_base(method)].items()}


def trial_seed(method: str, dataset: str, trial: int) -> list[int]:
    """The entropy used to draw ``trial`` of ``method`` on ``dataset`` (stable across processes)."""
    return [zlib.crc32(method.encode()), zlib.crc32(dataset.encode()), int(trial)]


def sample(method: str, dataset: str = "", trial: int = 0, **fixed: Any) -> dict[str, Any]:
    """Hyperparameters of ``trial`` (0 = defaults); ``fixed`` values override the draw."""
    if int(trial) < 0:
        raise ValueError(f"trial must be >= 0, got {trial}")
    space = REGISTRY[_base(method)]
    if int(trial) == 0:
        out = defaults(method)
    else:
        rng = np.random.default_rng(trial_seed(method, dataset, trial))
        out = {k: p.sample(rng) for k, p in space.items()}
    out.update(fixed)
    return out


def select_best_trial(
    frame: Any,
    metric: str,
    split: str = "valid",
    higher_is_better: bool = True,
    by: tuple[str, ...] = ("method",),
) -> dict[tuple[Any, ...], int]:
    """For each group (``by`` columns) the trial with the best mean ``metric`` on ``split``.

    ``frame`` is the long metrics frame of :meth:`ResultStore.metrics_frame`. Only rows of
    ``split`` (the validation split by default) are used; ties go to the lower trial.
    Returns ``{group values: best trial}``.
    """
    sel = frame[(frame["name"] == metric) & (frame["split"] == split)]
    if sel.empty:
        return {}
    mean = sel.groupby([*by, "trial"])["value"].mean().reset_index()
    out: dict[tuple[Any, ...], int] = {}
    for key, grp in mean.groupby(list(by)):
        key = key if isinstance(key, tuple) else (key,)
        vals = grp["value"].to_numpy()
        order = np.lexsort((grp["trial"].to_numpy(), -vals if higher_is_better else vals))
        out[key] = int(grp["trial"].to_numpy()[order[0]])
    return out


def keep_best_trials(frame: Any, best: Mapping[tuple[Any, ...], int], by: tuple[str, ...] = ("method",)) -> Any:
    """Rows of ``frame`` belonging to each group's selected trial (groups without one are kept)."""
    if not best:
        return frame
    keys = list(zip(*(frame[c] for c in by)))
    mask = [best.get(tuple(k), t) == t for k, t in zip(keys, frame["trial"])]
    return frame[np.asarray(mask, dtype=bool)]


__all__ = ["HParam", "MODEL_KEYS", "REGISTRY", "TRAINER_KEYS", "defaults", "keep_best_trials", "sample", "select_best_trial", "trial_seed"]
