"""causalmtl.metrics: metrics that take arrays and callables (no models, methods or trainers).

* :mod:`~causalmtl.metrics.spurious` — input-gradient saliency and the spurious score ρ_spur
  (Hu et al., NeurIPS 2022, §2.2).
"""

from .spurious import input_saliency, model_spurious_score, spurious_score

__all__ = ["input_saliency", "model_spurious_score", "spurious_score"]
