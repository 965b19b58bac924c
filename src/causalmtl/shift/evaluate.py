"""One call from predictions to per-draw results: sample q, measure τ, importance-sample accuracy.

:func:`evaluate_shift` runs the protocol of Makino et al. (2022), §5.4–5.6 and §6: draw
``n_draws`` target priors q around p (:mod:`~causalmtl.shift.sample`), compute the severity
τ(p, q) of each (:mod:`~causalmtl.shift.severity`) and the importance-sampled main-task accuracy
of the predictions for every α under each q (:mod:`~causalmtl.shift.importance`). Draws are
processed in chunks sharing one random stream, so the result does not depend on
``chunk_size`` and memory stays at O(chunk_size · K) for the q's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._severity import check_variant
from .._validation import as_numpy, check_alpha, check_n_classes
from .analysis import ShiftDraws
from .importance import ImportanceEstimator, correctness
from .sample import QSampler, RandomLike, ShuffleNoiseSampler, flat_log_prior, random_state
from .severity import TauVariant, severity

logger = logging.getLogger(__name__)


def _pool(x: Any, name: str, axis: int) -> np.ndarray:
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is an empty list; give one array per seed")
        parts = [np.asarray(as_numpy(a)) for a in x]
        try:
            return np.concatenate(parts, axis=axis)
        except ValueError as exc:
            raise ValueError(f"{name}: the per-seed arrays cannot be concatenated: {exc}") from exc
    return np.asarray(as_numpy(x))


def evaluate_shift(
    labels: Any,
    predictions: Any,
    log_p: Any,
    alphas: Sequence[float] | np.ndarray,
    *,
    n_classes: Sequence[int] | None = None,
    task: int = 0,
    n_draws: int = 1000,
    seed: RandomLike = 0,
    sampler: QSampler | None = None,
    tau_variant: TauVariant = "scipy",
    chunk_size: int = 250,
    progress: bool = False,
) -> ShiftDraws:
    """Evaluate predictions for several α under ``n_draws`` sampled target shifts.

    Parameters
    ----------
    labels : ``(N, T)`` int labels (``-1`` = missing), or a list of per-seed arrays, which
        are concatenated (the paper pools five seeds this way)
    predictions : ``(A, N, T)`` predicted labels (or ``(A, N)`` main-task predictions), or a
        list of per-seed arrays concatenated along N
    log_p : the prior the test labels follow, as log-probabilities (flat C-order or shape
        ``n_classes``; need not be normalised) or a ``JointPrior``. q is sampled around it and
        the importance weights are q/p.
    alphas : the α of each prediction slice (must include 0.0 for :func:`analyze`)
    n_classes : classes per task (default: from a ``JointPrior`` or a shaped ``log_p``)
    task : the main task whose accuracy is reported
    n_draws : number of q's (>= 2)
    seed : int (reproduces the authors' draws with the default sampler), RandomState or
        Generator
    sampler : default :class:`ShuffleNoiseSampler` (§5.6)
    tau_variant : ``"scipy"`` (default) or ``"shieh"``, see :func:`weighted_tau`
    chunk_size : draws evaluated at once (bounds memory; results do not depend on it)
    progress : show a tqdm progress bar

    Returns
    -------
    ShiftDraws with ``tau (D,)`` and ``accuracy (D, A)``.
    """
    check_variant(tau_variant)
    if n_classes is None:
        if hasattr(log_p, "n_classes"):
            n_classes = tuple(log_p.n_classes)
        else:  # a shaped log prior (a flat one describes a single task)
            n_classes = np.shape(as_numpy(log_p))
    n_classes = check_n_classes(n_classes)
    lp = flat_log_prior(log_p, "log_p")
    K = int(np.prod(n_classes))
    if lp.size != K:
        raise ValueError(
            f"log_p has {lp.size} joint classes but n_classes {n_classes} gives K = {K}"
        )
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 2:
        raise ValueError(f"n_draws must be an int >= 2 (the analysis bins draws), got {n_draws!r}")
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    alphas_arr = check_alpha(alphas, "alphas")
    lab = _pool(labels, "labels", axis=0)
    pred = _pool(predictions, "predictions", axis=1)
    if pred.ndim >= 2 and pred.shape[0] != alphas_arr.size:
        raise ValueError(
            f"predictions has {pred.shape[0]} α slices but alphas has {alphas_arr.size} values "
            f"({alphas_arr.tolist()})"
        )
    if pred.ndim >= 2 and pred.shape[1] != lab.shape[0]:
        raise ValueError(
            f"predictions has N = {pred.shape[1]} examples but labels has N = {lab.shape[0]}"
        )
    correct, valid = correctness(lab, pred, n_classes, task)
    estimator = ImportanceEstimator(lab, correct, n_classes, valid)
    logger.info(
        "shift evaluation: N=%d (main-task labelled %d), K=%d, %d label patterns, A=%d, D=%d",
        lab.shape[0], int(valid.sum()), K, estimator.n_patterns, alphas_arr.size, n_draws,
    )  # fmt: skip
    sampler = sampler or ShuffleNoiseSampler()
    rng = random_state(seed)
    lp_norm = lp.reshape(1, -1)
    taus, accs = [], []
    params: dict[str, list[np.ndarray]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_draws, desc="q draws", unit="draw")
    try:
        done = 0
        while done < n_draws:
            n = min(chunk_size, n_draws - done)
            draws = sampler.sample(lp, n, rng)
            taus.append(severity(lp, draws, tau_variant))
            accs.append(estimator.estimate(lp_norm, draws, p_is_log=True))
            for k, v in draws.params.items():
                params.setdefault(k, []).append(v)
            done += n
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    return ShiftDraws(
        tau=np.concatenate(taus),
        accuracy=np.concatenate(accs),
        alphas=alphas_arr,
        params={k: np.concatenate(v) for k, v in params.items()},
        meta={
            **sampler.config(),
            "seed": seed if isinstance(seed, (int, np.integer)) else None,
            "tau_variant": tau_variant,
            "task": int(task),
            "n_classes": list(n_classes),
            "n_examples": int(lab.shape[0]),
            "n_main_labelled": int(valid.sum()),
        },
    )


__all__ = ["evaluate_shift"]
