"""Multi-SEM: the linear structural-equation world of MT-CRL (Hu et al., 2022, App. A and C.1).

Generative model (MT-CRL Eq. 10, after Rosenfeld et al. 2021), for T binary tasks:

* labels ``Y_t ∈ {0, 1}`` (stored as 0/1; the paper's ``{−1, +1}`` are ``s_t = 2Y_t − 1``),
  drawn from a joint table that depends on the *label–label confounder* ``m_C``;
* one ``d``-dimensional factor per task, ``F_t ~ N(s_t · μ_t, σ_t² I_d)`` (Eq. 10);
* ``X = [F_1, …, F_T]`` (shape ``T·d``), optionally mixed by a fixed random rotation
  ``X = F Rᵀ`` with ``R`` orthogonal (Haar-distributed, drawn once from the seed).

The block ``F_t`` is the only causal factor of ``Y_t``; all other blocks are non-causal but
predictive through the label correlation. ``DatasetSplits.meta["causal_blocks"][t]`` holds the
input indices ``t·d … (t+1)·d − 1``. Without rotation these index ``X`` itself; with rotation
they index the factor coordinates ``F = X R`` (``meta["rotation"]`` is ``R``), since no input
coordinate is then causal by itself.

Label–label confounder (App. A, Table 4)
----------------------------------------
For T = 2 the paper sets ``P(Y_a = Y_b) = m_C`` with balanced marginals:
``p(y_a, y_b) = m_C / 2`` on the diagonal and ``(1 − m_C) / 2`` off it (the printed Table 4
omits the factor 1/2). ``m_C`` is set separately for train, valid and test, so that the
correlation shifts. Two documented generalisations to T > 2, both equal to Table 4 at T = 2
and both keeping every marginal balanced:

* ``structure="hub"`` (default, any ``m_C ∈ [0, 1]``): ``Y_1 ~ Bernoulli(1/2)`` and, for
  ``t ≥ 2`` independently, ``Y_t = Y_1`` with probability ``m_C`` (else ``1 − Y_1``). Then
  ``P(Y_1 = Y_t) = m_C`` for every ``t`` and ``P(Y_s = Y_t) = m_C² + (1 − m_C)²`` for
  ``s, t ≥ 2``. Exactly ``p(y) = ½ Π_{t≥2} m_C^{[y_t = y_1]} (1 − m_C)^{[y_t ≠ y_1]}``.
* ``structure="latent"`` (exchangeable; needs ``m_C ≥ 1/2`` when T > 2): a hidden
  ``C ~ Bernoulli(1/2)`` and ``Y_t = C`` with probability ``r = (1 + √(2 m_C − 1)) / 2``
  independently, so that **every** pair agrees with probability ``r² + (1 − r)² = m_C``.
  (Three or more binary labels cannot all pairwise disagree often: ``m_C < 1/2`` is refused.)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._common import (
    SPLIT_ENV,
    SeedLike,
    as_generator,
    check_positive_int,
    check_unit_interval,
    sample_joint_labels,
)
from .base import DatasetSplits, MultiTaskDataset, Task

MIN_TASKS, MAX_TASKS = 2, 8
Structure = Literal["hub", "latent"]


def _check_n_tasks(n_tasks: Any) -> int:
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or not (
        MIN_TASKS <= int(n_tasks) <= MAX_TASKS
    ):
        raise ValueError(f"n_tasks must be an int in [{MIN_TASKS}, {MAX_TASKS}], got {n_tasks!r}")
    return int(n_tasks)


def sem_label_table(n_tasks: int, m: float, structure: Structure = "hub") -> np.ndarray:
    """The joint label distribution ``p(y_1, …, y_T)`` of Multi-SEM, shape ``(2,) * T``.

    Implements MT-CRL Table 4 for T = 2 and the generalisations of the module docstring for
    T > 2.

    Raises
    ------
    ValueError
        ``n_tasks`` outside [2, 8], ``m`` outside [0, 1], an unknown ``structure``, or
        ``structure="latent"`` with ``m < 1/2`` and T > 2.
    """
    t_count = _check_n_tasks(n_tasks)
    m = check_unit_interval(m, "m")
    ys = np.array(list(itertools.product((0, 1), repeat=t_count)), dtype=np.int64)  # C-order
    if structure == "hub":
        agree = (ys[:, 1:] == ys[:, :1]).sum(axis=1)
        probs = 0.5 * m**agree * (1.0 - m) ** (t_count - 1 - agree)
    elif structure == "latent":
        if t_count == 2:
            probs = np.where(ys[:, 0] == ys[:, 1], m / 2, (1 - m) / 2)
        else:
            if m < 0.5:
                raise ValueError(
                    f"m = {m!r} < 0.5 is impossible with structure='latent' for {t_count} tasks "
                    "(every pair cannot disagree that often); use structure='hub' or m >= 0.5"
                )
            r = (1 + np.sqrt(2 * m - 1)) / 2
            ones = ys.sum(axis=1)
            probs = 0.5 * (r**ones * (1 - r) ** (t_count - ones) + (1 - r) ** ones * r ** (t_count - ones))
    else:
        raise ValueError(f"structure must be 'hub' or 'latent', got {structure!r}")
    result: np.ndarray = probs.reshape((2,) * t_count)
    return result


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal ``(dim, dim)`` matrix (QR of a Gaussian, sign-corrected)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))[None, :]


def make_multi_sem(
    n_tasks: int = 2,
    dim: int = 5,
    n_train: int = 2000,
    n_valid: int = 1000,
    n_test: int = 2000,
    m_train: float = 0.9,
    m_valid: float | None = None,
    m_test: float = 0.1,
    signal: float = 1.0,
    sigma: float | Sequence[float] = 1.0,
    mu: npt.ArrayLike | None = None,
    rotate: bool = False,
    structure: Structure = "hub",
    seed: SeedLike = 0,
) -> DatasetSplits:
    """Build Multi-SEM train/valid/test splits (MT-CRL App. A Eq. 10, App. C.1).

    Parameters
    ----------
    n_tasks : int in [2, 8]
        Number of binary tasks T.
    dim : int
        Dimension ``d`` of each task's factor ``F_t``; ``X`` has ``T·d`` features.
    n_train, n_valid, n_test : int
        Split sizes.
    m_train, m_valid, m_test : float in [0, 1]
        Label agreement ``m_C`` of each split (``m_valid`` defaults to ``m_train``, an
        in-distribution validation set); see the module docstring for T > 2.
    signal : float > 0
        Norm of each mean vector ``μ_t`` (drawn as a uniformly random direction), used when
        ``mu`` is not given; single-task Bayes accuracy is ``Φ(signal / σ_t)``.
    sigma : float or T floats > 0
        Noise standard deviation ``σ_t`` per task.
    mu : array ``(T, d)``, optional
        Explicit mean vectors ``μ_t``.
    rotate : bool
        Mix ``X = F Rᵀ`` with a fixed random orthogonal ``R`` (``meta["rotation"]``).
    structure : ``"hub"`` or ``"latent"``
        Generalisation of the label agreement to T > 2 (module docstring).
    seed : int or Generator
        Everything (μ, R, labels, noise) is drawn from it; same seed, same data.

    Returns
    -------
    DatasetSplits
        Inputs float32 ``(N, T·d)``, targets int64 ``(N, T)``; env ids train 0, valid 1,
        test 2. ``meta`` holds ``"causal_blocks"`` (T int arrays), ``"mu"``, ``"sigma"``,
        ``"rotation"`` (or None), ``"m"`` (per split), ``"structure"`` and ``"true_joint"``
        (the exact ``p(y)`` table per split).

    Examples
    --------
    >>> splits = make_multi_sem(n_tasks=3, dim=2, n_train=100, n_valid=10, n_test=10, seed=0)
    >>> splits.train.inputs.shape, splits.meta["causal_blocks"][2].tolist()
    ((100, 6), [4, 5])
    """
    t_count = _check_n_tasks(n_tasks)
    dim = check_positive_int(dim, "dim")
    sizes = {
        "train": check_positive_int(n_train, "n_train"),
        "valid": check_positive_int(n_valid, "n_valid"),
        "test": check_positive_int(n_test, "n_test"),
    }
    raw_m = {"train": m_train, "valid": m_train if m_valid is None else m_valid, "test": m_test}
    ms = {k: check_unit_interval(v, f"m_{k}") for k, v in raw_m.items()}
    tables = {k: sem_label_table(t_count, m, structure) for k, m in ms.items()}
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.ndim == 0:
        sig = np.full(t_count, float(sig))
    if sig.shape != (t_count,) or not np.all(np.isfinite(sig)) or (sig <= 0).any():
        raise ValueError(f"sigma must be a number or {t_count} numbers, all finite and > 0, got {sigma!r}")
    rng = as_generator(seed)
    if mu is None:
        s = float(signal)
        if not np.isfinite(s) or s <= 0:
            raise ValueError(f"signal must be a finite number > 0, got {signal!r}")
        u = rng.standard_normal((t_count, dim))
        mu_arr = s * u / np.linalg.norm(u, axis=1, keepdims=True)
    else:
        mu_arr = np.asarray(mu, dtype=np.float64)
        if mu_arr.shape != (t_count, dim) or not np.all(np.isfinite(mu_arr)):
            raise ValueError(f"mu must be a finite array of shape (n_tasks, dim) = {(t_count, dim)}, got {mu_arr.shape}")
    rotation = random_rotation(t_count * dim, rng) if rotate else None

    tasks = tuple(Task(f"y{t}", n_classes=2) for t in range(t_count))
    parts: dict[str, MultiTaskDataset] = {}
    for split, n in sizes.items():
        labels = sample_joint_labels(tables[split], n, rng)
        signs = (2 * labels - 1).astype(np.float64)  # the paper's {−1, +1}
        factors = signs[:, :, None] * mu_arr[None] + sig[None, :, None] * rng.standard_normal((n, t_count, dim))
        x = factors.reshape(n, t_count * dim)
        if rotation is not None:
            x = x @ rotation.T
        parts[split] = MultiTaskDataset(
            inputs=x.astype(np.float32),
            targets=labels,
            tasks=tasks,
            env=np.full(n, SPLIT_ENV[split], dtype=np.int64),
            name=f"multi-sem/{split}",
        )
    return DatasetSplits(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        name="multi-sem",
        meta={
            "causal_blocks": [np.arange(t * dim, (t + 1) * dim) for t in range(t_count)],
            "mu": mu_arr,
            "sigma": sig,
            "rotation": rotation,
            "m": ms,
            "structure": structure,
            "true_joint": tables,
        },
    )


def agreement_rates(labels: npt.ArrayLike) -> np.ndarray:
    """Empirical ``P(Y_s = Y_t)`` for every pair of tasks, a ``(T, T)`` matrix (diagonal 1).

    Rows with a missing label (``-1``) in either task of a pair are ignored for that pair.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2-D (N, T) array, got shape {lab.shape}")
    present = lab >= 0
    both = present[:, :, None] & present[:, None, :]
    eq = (lab[:, :, None] == lab[:, None, :]) & both
    with np.errstate(invalid="ignore"):
        result: np.ndarray = eq.sum(axis=0) / both.sum(axis=0)
        return result
