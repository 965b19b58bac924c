"""causalmtl.metrics: metrics that take arrays and callables (no models, methods or trainers).

* :mod:`~causalmtl.metrics.spurious` — input-gradient saliency and the spurious score ρ_spur
  (Hu et al., NeurIPS 2022, §2.2).
* :mod:`~causalmtl.metrics.relative` — relative improvement over a baseline, sign-aware per
  metric direction (Hu et al., NeurIPS 2022, Table 2); :mod:`~causalmtl.metrics.direction`
  gives each metric's direction by name.
* :mod:`~causalmtl.metrics.dense` — split-level metrics of dense tasks: confusion matrix
  (mIoU, pixel accuracy), depth abs / rel error, normal angles (MT-CRL Tables 8–10).
"""

from .dense import (
    ConfusionMatrix,
    DenseMetrics,
    DepthMetrics,
    NormalMetrics,
    RegressionMapMetrics,
    SegmentationMetrics,
    dense_metrics_for_task,
)
from .direction import metric_direction
from .relative import (
    per_metric_relative_improvement,
    per_task_relative_improvement,
    relative_improvement,
    relative_improvement_from_metrics,
    relative_improvement_table,
)
from .spurious import input_saliency, model_spurious_score, spurious_score

__all__ = [
    "ConfusionMatrix",
    "DenseMetrics",
    "DepthMetrics",
    "NormalMetrics",
    "RegressionMapMetrics",
    "SegmentationMetrics",
    "dense_metrics_for_task",
    "metric_direction",
    "per_metric_relative_improvement",
    "relative_improvement_from_metrics",
    "input_saliency",
    "model_spurious_score",
    "per_task_relative_improvement",
    "relative_improvement",
    "relative_improvement_table",
    "spurious_score",
]
