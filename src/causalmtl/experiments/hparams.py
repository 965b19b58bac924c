"""Hyperparameters per method: documented defaults and a deterministic random search.

Nothing is declared here: the space of an experiment method is derived from the ``HPARAMS``
of the trainer, its architecture and its method class (:mod:`.method_table`).

Trial 0 of every method is its documented default. Trial ``k > 0`` draws every
hyperparameter from its search distribution with a generator seeded by
``(crc32(method), crc32(dataset), k)`` — never by the run seed, so all seeds of a trial share
the same hyperparameters and the same trial is drawn on every machine and every rerun (in the
spirit of DomainBed's ``hparams_registry``). :func:`select_best_trial` picks, per method, the
trial with the best mean *validation* metric over seeds; test metrics are never looked at.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from .._hparams import HParam, choice, log_uniform, uniform
from . import method_table


def space(method: str) -> dict[str, HParam]:
    """The search space of ``method`` (a family or an experiment method name such as ``mtcrl-var``):
    ``Trainer.HPARAMS`` ∪ the architecture's ``HPARAMS`` ∪ the method class's ``HPARAMS``, the
    searched ones, in that order (derived by :func:`.method_table.search_space`)."""
    return method_table.search_space(_base(method))


def trainer_keys() -> frozenset[str]:
    """Hyperparameters applied to the trainer (``Trainer.HPARAMS``)."""
    return frozenset(method_table.trainer_hparams())


def model_keys() -> frozenset[str]:
    """Hyperparameters applied to the model (the ``HPARAMS`` of :data:`.method_table.ARCH_MODELS`)."""
    return frozenset(k for arch in method_table.ARCH_MODELS for k in method_table.arch_hparams(arch))


class _Registry(Mapping[str, Mapping[str, HParam]]):
    """Read-only view: family → its derived search space (:func:`space`)."""

    def __getitem__(self, family: str) -> Mapping[str, HParam]:
        if family not in method_table.families():
            raise KeyError(family)
        return MappingProxyType(method_table.search_space(family))

    def __iter__(self) -> Iterator[str]:
        return iter(method_table.families())

    def __len__(self) -> int:
        return len(method_table.families())


#: family → hyperparameter name → :class:`HParam`, derived from the declarations (read-only)
REGISTRY: Mapping[str, Mapping[str, HParam]] = _Registry()


def __getattr__(name: str) -> frozenset[str]:
    # TRAINER_KEYS / MODEL_KEYS stay importable; derived on first use so that importing the
    # experiments does not import torch (the trainer and model classes declare them)
    if name == "TRAINER_KEYS":
        return trainer_keys()
    if name == "MODEL_KEYS":
        return model_keys()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _base(method: str) -> str:
    """``"mtcrl-var"`` → ``"mtcrl"``: variants share their family's hyperparameters."""
    fams = method_table.families()
    if method in fams:
        return method
    head = method.replace("-", "_").split("_")[0]
    if head in fams:
        return head
    raise ValueError(f"unknown method {method!r} for hyperparameters; known: {', '.join(sorted(fams))}")


def defaults(method: str) -> dict[str, Any]:
    """The documented default hyperparameters of ``method`` (the searched ones)."""
    return {k: p.default for k, p in space(method).items()}


def trial_seed(method: str, dataset: str, trial: int) -> list[int]:
    """The entropy used to draw ``trial`` of ``method`` on ``dataset`` (stable across processes)."""
    return [zlib.crc32(method.encode()), zlib.crc32(dataset.encode()), int(trial)]


def sample(method: str, dataset: str = "", trial: int = 0, **fixed: Any) -> dict[str, Any]:
    """Hyperparameters of ``trial`` (0 = defaults); ``fixed`` values override the draw."""
    if int(trial) < 0:
        raise ValueError(f"trial must be >= 0, got {trial}")
    params = space(method)
    if int(trial) == 0:
        out = defaults(method)
    else:
        rng = np.random.default_rng(trial_seed(method, dataset, trial))
        out = {k: p.draw(rng) for k, p in params.items()}
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


# TRAINER_KEYS / MODEL_KEYS are served by the module __getattr__ above
__all__ = ["HParam", "MODEL_KEYS", "REGISTRY", "TRAINER_KEYS", "choice", "defaults", "log_uniform", "model_keys", "space", "trainer_keys", "uniform", "keep_best_trials", "sample", "select_best_trial", "trial_seed"]  # noqa: F822
