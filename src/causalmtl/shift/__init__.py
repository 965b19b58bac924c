"""causalmtl.shift — target-shift evaluation (Makino et al. 2022, §5.4–5.6 and §6).

* :mod:`~causalmtl.shift.sample` — shifted target priors q around p (the authors'
  shuffle-and-noise protocol, draw for draw, and a Dirichlet protocol).
* :mod:`~causalmtl.shift.severity` — severity τ(p, q), weighted Kendall's τ.
* :mod:`~causalmtl.shift.importance` — importance-sampled metrics for many q × many α at
  once, grouped by label pattern (missing labels use marginals).
"""

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

__all__ = [
    "DirichletSampler",
    "ImportanceEstimator",
    "LabelPatterns",
    "QDraws",
    "QSampler",
    "ShuffleNoiseSampler",
    "TAU_VARIANTS",
    "correctness",
    "flat_log_prior",
    "importance_accuracy",
    "importance_mean",
    "make_sampler",
    "sample_q",
    "severity",
    "weighted_tau",
]
