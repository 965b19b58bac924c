"""causalmtl.shift — target-shift evaluation (Makino et al. 2022, §5.4–5.6 and §6).

* :mod:`~causalmtl.shift.sample` — shifted target priors q around p (the authors'
  shuffle-and-noise protocol, draw for draw, and a Dirichlet protocol).
* :mod:`~causalmtl.shift.severity` — severity τ(p, q), weighted Kendall's τ.
* :mod:`~causalmtl.shift.importance` — importance-sampled metrics for many q × many α at
  once, grouped by label pattern (missing labels use marginals).
* :mod:`~causalmtl.shift.evaluate` — :func:`evaluate_shift`, predictions to per-draw results.
* :mod:`~causalmtl.shift.analysis` — τ bins, optimal α, gain, correlation (Figure 3).
* :mod:`~causalmtl.shift.files` — prediction bundles (``.npz``) and the GMTL file layout.
* :mod:`~causalmtl.shift.plots` — the figures (imported on first use: matplotlib is heavy).

>>> import numpy as np
>>> from causalmtl import shift
>>> rng = np.random.default_rng(0)
>>> p = rng.dirichlet(np.ones(6)).reshape(2, 3)                  # in-distribution prior
>>> labels = np.stack([rng.integers(0, 2, 200), rng.integers(0, 3, 200)], axis=1)
>>> preds = np.stack([labels, np.where(rng.random((200, 2)) < 0.3, 0, labels)])  # α = 0, 1
>>> draws = shift.evaluate_shift(labels, preds, np.log(p), alphas=[0.0, 1.0], n_draws=50)
>>> draws.accuracy.shape
(50, 2)
>>> shift.analyze(draws).optimal_alpha.shape
(5,)
"""

from typing import Any

from .analysis import (
    ShiftAnalysis,
    ShiftDraws,
    alpha_label,
    analyze,
    bin_by_tau,
    pooled_correlation,
)
from .evaluate import evaluate_shift
from .files import ShiftInputs, load_bundles, load_gmtl_dir, load_log_prior
from .importance import (
    ImportanceEstimator,
    LabelPatterns,
    correctness,
    importance_accuracy,
    importance_mean,
)
from .sample import (
    DirichletSampler,
    QDraws,
    QSampler,
    ShuffleNoiseSampler,
    flat_log_prior,
    make_sampler,
    sample_q,
)
from .severity import TAU_VARIANTS, severity, weighted_tau

_PLOTS = ("plot_figure3", "plot_optimal_alpha", "plot_gain", "plot_accuracy_vs_alpha")


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DirichletSampler",
    "ImportanceEstimator",
    "LabelPatterns",
    "QDraws",
    "QSampler",
    "ShiftAnalysis",
    "ShiftDraws",
    "ShiftInputs",
    "ShuffleNoiseSampler",
    "TAU_VARIANTS",
    "alpha_label",
    "analyze",
    "bin_by_tau",
    "correctness",
    "evaluate_shift",
    "flat_log_prior",
    "importance_accuracy",
    "importance_mean",
    "load_bundles",
    "load_gmtl_dir",
    "load_log_prior",
    "make_sampler",
    "pooled_correlation",
    "sample_q",
    "severity",
    "weighted_tau",
    *_PLOTS,
]
