"""One hyperparameter declared once, next to the code that reads it.

:class:`HParam` holds a default, an optional sampler for random search and a doc string. Method
classes (``Method.HPARAMS``), the trainer (``Trainer.HPARAMS``) and models with a trainer-side
knob (``CrossStitch.HPARAMS``) declare theirs with it; the experiments derive their search space
from those declarations (:mod:`causalmtl.experiments.hparams`). A hyperparameter without a
sampler keeps its default in every search trial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: a sampler draws one value from a numpy Generator
Sampler = Callable[[np.random.Generator], Any]


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its default, a sampler for random search (``None``: not searched), and what it does."""

    default: Any
    sample: Sampler | None = None
    doc: str = ""

    def __getitem__(self, i: int) -> Any:
        """``p[0]`` the default, ``p[1]`` the doc: the ``(default, doc)`` tuples ``HPARAMS`` held
        before :class:`HParam` keep reading the same."""
        return (self.default, self.doc)[i]

    @property
    def searched(self) -> bool:
        return self.sample is not None

    def draw(self, rng: np.random.Generator) -> Any:
        """One random-search value (consumes ``rng``); raises for an unsearched hyperparameter."""
        if self.sample is None:
            raise ValueError(f"this hyperparameter is not searched (no sampler); its default is {self.default!r}")
        return self.sample(rng)


def log_uniform(low: float, high: float) -> Callable[[np.random.Generator], float]:
    """A sampler of ``10 ** U(log10 low, log10 high)``."""
    lo, hi = float(np.log10(low)), float(np.log10(high))
    return lambda rng: float(10 ** rng.uniform(lo, hi))


def uniform(low: float, high: float) -> Callable[[np.random.Generator], float]:
    """A sampler of ``U(low, high)``."""
    return lambda rng: float(rng.uniform(low, high))


def choice(values: Sequence[T]) -> Callable[[np.random.Generator], T]:
    """A sampler of one of ``values``, uniformly."""
    vals = list(values)
    return lambda rng: vals[int(rng.integers(len(vals)))]


def defaults_of(params: dict[str, HParam]) -> dict[str, Any]:
    """``{name: default}`` of a declaration table."""
    return {k: p.default for k, p in params.items()}


__all__ = ["HParam", "Sampler", "choice", "defaults_of", "log_uniform", "uniform"]
