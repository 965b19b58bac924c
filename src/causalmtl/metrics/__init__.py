"""causalmtl.metrics: metrics that take arrays and callables (no models, methods or trainers).

* :mod:`~causalmtl.metrics.spurious` — input-gradient saliency and the spurious score ρ_spur
  (Hu et al., NeurIPS 2022, §2.2).
* :mod:`~causalmtl.metrics.relative` — relative improvement over a baseline, sign-aware per
  metric direction (Hu et al., NeurIPS 2022, Table 2).
"""

from .relative import (
    per_task_relative_improvement,
    relative_improvement,
    relative_improvement_table,
)
from .spurious import input_saliency, model_spurious_score, spurious_score

__all__ = [
    "input_saliency",
    "model_spurious_score",
    "per_task_relative_improvement",
    "relative_improvement",
    "relative_improvement_table",
    "spurious_score",
]
