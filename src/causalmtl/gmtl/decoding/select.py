"""The α heuristic of GMTL (Makino et al. 2022, §3.1).

"Set α to the maximum value within an acceptable loss in ID predictive performance, where
the latter is measured using the validation set." :func:`select_alpha` decodes the
validation set for every α on a grid, measures the main task's metric (accuracy by default)
and returns the largest α whose metric is within ``tolerance`` of α = 0's, together with
the whole curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..._validation import as_float, as_int, as_numpy, check_alpha, check_labels
from ..priors.prior import JointPrior, as_prior
from .decode import gmtl_decode


def main_task_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy over the rows whose label is present (``y_true >= 0``)."""
    mask = y_true >= 0
    if not mask.any():
        raise ValueError("the main task has no labelled row in the validation data")
    return float((y_true[mask] == y_pred[mask]).mean())


@dataclass(frozen=True)
class AlphaSelection:
    """Result of :func:`select_alpha`.

    Attributes
    ----------
    alpha : the selected α (the largest acceptable one)
    curve : DataFrame with columns ``alpha``, ``metric``, ``acceptable`` (one row per α)
    reference : the metric at α = 0 (DMTL)
    threshold : the smallest acceptable metric value
    """

    alpha: float
    curve: pd.DataFrame
    reference: float
    threshold: float


def select_alpha(
    log_probs: Any,
    labels: Any,
    prior: JointPrior | Any,
    alphas: Sequence[float] | npt.NDArray[np.floating[Any]] | None = None,
    main_task: int = 0,
    tolerance: float = 0.01,
    mode: Literal["absolute", "relative"] = "absolute",
    metric: Callable[[np.ndarray, np.ndarray], float] = main_task_accuracy,
    higher_is_better: bool = True,
) -> AlphaSelection:
    """Choose α by the §3.1 heuristic on validation data.

    Parameters
    ----------
    log_probs : per-task validation log-probabilities (as for :func:`decode`)
    labels : int ``(N, T)`` validation labels, ``-1`` where missing
    prior : the training joint prior
    alphas : grid of α values in [0, 1] (default ``0, 0.1, …, 1``); 0 is always added
    main_task : index of the task whose metric is protected
    tolerance : acceptable loss in the metric relative to α = 0
    mode : ``"absolute"`` (metric ≥ ref − tol) or ``"relative"`` (metric ≥ ref·(1 − tol))
    metric : ``metric(y_true, y_pred) -> float`` on the main task's column
    higher_is_better : False for a loss-like metric (the inequalities flip)

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import JointPrior, select_alpha
    >>> prior = JointPrior.from_probs([[0.4, 0.1], [0.1, 0.4]])
    >>> lp = [np.log([[0.9, 0.1], [0.45, 0.55]]), np.log([[0.5, 0.5], [0.9, 0.1]])]
    >>> sel = select_alpha(lp, np.array([[0, 0], [1, 0]]), prior, alphas=[0, 0.5, 1])
    >>> sel.alpha, sel.curve["metric"].tolist()
    (1.0, [1.0, 1.0, 1.0])
    """
    prior = as_prior(prior)
    grid = check_alpha(np.linspace(0, 1, 11) if alphas is None else alphas, name="alphas")
    grid = np.unique(np.concatenate([[0.0], grid]))
    if not 0 <= as_int(main_task, "main_task", low=0) < prior.n_tasks:
        raise ValueError(f"main_task must be in [0, {prior.n_tasks}), got {main_task!r}")
    tol = as_float(tolerance, "tolerance", low=0)
    if mode not in ("absolute", "relative"):
        raise ValueError(f"mode must be 'absolute' or 'relative', got {mode!r}")
    y = check_labels(labels, prior.n_classes)
    n = len(as_numpy(log_probs[0]) if isinstance(log_probs, (list, tuple)) else as_numpy(log_probs))
    if y.shape[0] != n:
        raise ValueError(f"labels has {y.shape[0]} rows but log_probs has {n}")
    preds = np.asarray(as_numpy(gmtl_decode(log_probs, prior, alpha=grid).labels))
    values = np.array([metric(y[:, main_task], preds[i, :, main_task]) for i in range(len(grid))])
    ref = float(values[0])
    sign = 1.0 if higher_is_better else -1.0
    margin = tol if mode == "absolute" else abs(ref) * tol
    threshold = ref - sign * margin
    acceptable = sign * (values - threshold) >= -1e-12
    chosen = float(grid[np.flatnonzero(acceptable).max()])
    curve = pd.DataFrame({"alpha": grid, "metric": values, "acceptable": acceptable})
    return AlphaSelection(alpha=chosen, curve=curve, reference=ref, threshold=float(threshold))
