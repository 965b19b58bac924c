"""Reading predictions for the target-shift evaluation: the ``.npz`` bundle and the GMTL layout.

Prediction bundle (``.npz``, read with ``allow_pickle=False``)
--------------------------------------------------------------
``labels``            int ``(N, T)``, ``-1`` where a label is missing (required)
``n_classes``         int ``(T,)``; optional when a prior below has shape ``n_classes``
one of
  ``predictions`` + ``alphas``
                      int ``(A, N, T)`` predicted labels (or ``(A, N)`` main-task labels) and
                      float ``(A,)`` the α each slice was decoded with; or
  ``log_probs_0`` … ``log_probs_{T-1}``
                      float ``(N, C_t)`` per-task log-probabilities; they are decoded with
                      :func:`causalmtl.gmtl.gmtl_decode` at the requested α against ``prior``
``prior`` or ``log_prior``
                      the joint prior p(y) the model was trained with (probabilities of shape
                      ``n_classes``, or log-probabilities, any shape, C-order, need not be
                      normalised). Required with ``log_probs_*``.
``test_prior`` or ``test_log_prior``
                      optional: the prior the test labels follow, around which q is sampled and
                      by which importance weights q/p are divided. Default: ``prior`` /
                      ``log_prior``; when there is no prior at all, it is fitted on the labels
                      (fully-labelled rows, pseudocount 1) and a warning is logged.

Several bundles (e.g. seeds) are pooled by concatenating their examples; their priors must
agree.

GMTL layout (the files the authors' GMTL code writes)
-----------------------------------------------------
``DIR/s={i}/y_pred_None.pkl`` (α = 0) and ``DIR/s={i}/y_pred_{alpha}.pkl`` for seeds
``i = 0 … n_seeds − 1``: pickles of a tuple ``(labels, predictions)`` of int64 arrays
``(N, T)`` (labels ``−1`` where missing); seeds are concatenated. The log prior FILE is a
``torch.save``'d 1-D tensor of the flattened log prior (C-order, need not be normalised).
Pickles execute code when loaded: only read files you trust.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .._validation import as_numpy, check_alpha, check_labels, check_n_classes
from ..gmtl import JointPrior, gmtl_decode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShiftInputs:
    """Everything :func:`causalmtl.shift.evaluate_shift` needs, read from files.

    Attributes
    ----------
    labels : ``(N, T)`` int64
    predictions : ``(A, N, T)`` int64
    alphas : ``(A,)``
    log_p : flat normalised log prior the test labels follow (q is sampled around it)
    n_classes : classes per task
    source : description of the files read
    """

    labels: np.ndarray
    predictions: np.ndarray
    alphas: np.ndarray
    log_p: np.ndarray
    n_classes: tuple[int, ...]
    source: dict[str, Any]


def _normalise_log(x: Any, K: int, name: str) -> np.ndarray:
    arr = np.asarray(as_numpy(x), dtype=np.float64).reshape(-1)
    if arr.size != K:
        raise ValueError(f"{name} has {arr.size} entries but n_classes gives K = {K} joint classes")
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise ValueError(f"{name} contains NaN or +inf")
    ret: np.ndarray = arr - logsumexp(arr)
    return ret


def _prob_to_log(x: Any, K: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size != K:
        raise ValueError(f"{name} has {arr.size} entries but n_classes gives K = {K} joint classes")
    if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise ValueError(f"{name} must hold finite, non-negative probabilities with a positive sum")
    with np.errstate(divide="ignore"):
        ret: np.ndarray = np.log(arr / arr.sum())
        return ret


def _bundle_n_classes(z: Any, path: str) -> tuple[int, ...]:
    if "n_classes" in z:
        return check_n_classes(z["n_classes"].tolist(), name=f"{path}: n_classes")
    for key in ("prior", "test_prior", "log_prior", "test_log_prior"):
        if key in z and z[key].ndim >= 1:
            shape = z[key].shape
            if len(shape) > 1 or (
                "labels" in z and z["labels"].ndim == 2 and z["labels"].shape[1] == 1
            ):
                return check_n_classes(shape, name=f"{path}: {key}.shape")
    raise ValueError(
        f"{path}: cannot tell the classes per task; add an 'n_classes' array or a prior of shape n_classes"
    )


def _read_prior(z: Any, keys: tuple[str, str], K: int, path: str) -> np.ndarray | None:
    prob_key, log_key = keys
    if prob_key in z:
        return _prob_to_log(z[prob_key], K, f"{path}: {prob_key}")
    if log_key in z:
        return _normalise_log(z[log_key], K, f"{path}: {log_key}")
    return None


def _open_npz(name: str) -> Any:
    """``np.load(name)`` of a bundle; anything else is "not a causalmtl prediction bundle"."""
    try:
        z = np.load(name, allow_pickle=False)
    except ValueError as exc:  # numpy's "pickled (object) data" for a file it cannot read as npy/npz
        reason = "not a .npz archive" if "pickle" in str(exc) else str(exc)
        raise ValueError(f"{name}: not a causalmtl prediction bundle (.npz): {reason}") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise ValueError(f"{name}: not a causalmtl prediction bundle (.npz): truncated or damaged "
                         f"({type(exc).__name__}: {exc})") from None
    if not hasattr(z, "files"):  # a single .npy array
        raise ValueError(f"{name}: not a causalmtl prediction bundle (.npz): it is a single .npy array")
    return z


def _read_one_bundle(
    path: str | os.PathLike[str], alphas: Sequence[float] | None, task: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, tuple[int, ...]]:
    name = os.fspath(path)
    if not Path(name).is_file():
        raise ValueError(f"bundle {name!r} does not exist")
    z = _open_npz(name)
    try:
        with z:
            if "labels" not in z:
                raise ValueError(f"{name}: the bundle has no 'labels' array (keys: {sorted(z.files)})")
            n_classes = _bundle_n_classes(z, name)
            K = int(np.prod(n_classes))
            labels = check_labels(z["labels"], n_classes, name=f"{name}: labels")
            train_log = _read_prior(z, ("prior", "log_prior"), K, name)
            test_log = _read_prior(z, ("test_prior", "test_log_prior"), K, name)
            if "predictions" in z:
                if "alphas" not in z:
                    raise ValueError(
                        f"{name}: 'predictions' needs an 'alphas' array naming the α of each slice"
                    )
                got = check_alpha(z["alphas"], f"{name}: alphas")
                pred = np.asarray(z["predictions"])
                if pred.ndim == 2 and pred.shape == labels.shape and got.size == 1:
                    pred = pred[None]
                if pred.ndim not in (2, 3) or pred.shape[0] != got.size:
                    raise ValueError(
                        f"{name}: predictions has shape {pred.shape} but alphas has {got.size} values; "
                        "expected (A, N, T) or (A, N)"
                    )
                if pred.shape[1] != labels.shape[0]:
                    raise ValueError(
                        f"{name}: predictions has N = {pred.shape[1]} examples but labels has N = {labels.shape[0]}"
                    )
                if pred.ndim == 3 and pred.shape[2] != labels.shape[1]:
                    raise ValueError(
                        f"{name}: predictions has T = {pred.shape[2]} tasks but labels has T = {labels.shape[1]}"
                    )
                if alphas is not None:
                    want = check_alpha(alphas, "alphas")
                    pos = [np.flatnonzero(np.isclose(got, a, atol=1e-9)) for a in want]
                    missing = [float(a) for a, i in zip(want, pos) if i.size == 0]
                    if missing:
                        raise ValueError(
                            f"{name}: alphas {missing} were requested but the bundle has predictions for "
                            f"{got.tolist()} only"
                        )
                    sel = np.array([int(i[0]) for i in pos])
                    pred, got = pred[sel], got[sel]
                if pred.ndim == 2:  # main-task predictions only: place them in an (A, N, T) array
                    full = np.zeros((*pred.shape, len(n_classes)), dtype=np.int64)
                    full[:, :, task] = pred
                    pred = full
                return (
                    labels,
                    pred.astype(np.int64),
                    got,
                    test_log if test_log is not None else train_log,
                    n_classes,
                )
            lp_keys = [f"log_probs_{t}" for t in range(len(n_classes))]
            if not all(k in z for k in lp_keys):
                raise ValueError(
                    f"{name}: the bundle needs 'predictions' + 'alphas' or per-task "
                    f"{', '.join(lp_keys)} (keys found: {sorted(z.files)})"
                )
            if train_log is None:
                raise ValueError(
                    f"{name}: decoding log_probs_* needs the joint 'prior' (or 'log_prior')"
                )
            want = check_alpha(alphas if alphas is not None else np.round(np.linspace(0, 1, 11), 10))
            log_probs = [np.asarray(z[k], dtype=np.float64) for k in lp_keys]
            for t, lp in enumerate(log_probs):
                if lp.ndim != 2 or lp.shape[0] != labels.shape[0]:
                    raise ValueError(
                        f"{name}: log_probs_{t} has shape {lp.shape}; expected (N, C_{t}) with N = {labels.shape[0]}"
                    )
            prior = JointPrior.from_probs(np.exp(train_log).reshape(n_classes))
            pred = np.asarray(gmtl_decode(log_probs, prior, alpha=[float(a) for a in want]).labels, dtype=np.int64)
            return labels, pred, want, test_log if test_log is not None else train_log, n_classes
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise
        raise ValueError(f"{name}: not a causalmtl prediction bundle (.npz): it holds Python objects "
                         "(pickles), which a bundle never does") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise ValueError(f"{name}: not a causalmtl prediction bundle (.npz): truncated or damaged "
                         f"({type(exc).__name__}: {exc})") from None


def load_bundles(
    paths: Sequence[str | os.PathLike[str]], alphas: Sequence[float] | None = None, task: int = 0
) -> ShiftInputs:
    """Read one or several prediction bundles (module docstring) and pool their examples.

    Parameters
    ----------
    paths : ``.npz`` files; several are concatenated along N (e.g. seeds)
    alphas : α to evaluate. With ``predictions`` in the bundle, a subset of its ``alphas``
        (default: all); with ``log_probs_*``, the α to decode at (default 0, 0.1, …, 1).
    task : main task (only used to place ``(A, N)`` main-task predictions)
    """
    if not paths:
        raise ValueError("paths is empty; give at least one bundle")
    parts = [_read_one_bundle(p, alphas, task) for p in paths]
    labels0, _, alphas0, log_p0, n_classes0 = parts[0]
    for path, (_, _, a, lp, nc) in zip(paths[1:], parts[1:]):
        if nc != n_classes0:
            raise ValueError(
                f"{os.fspath(path)}: n_classes {nc} differs from the first bundle's {n_classes0}"
            )
        if not np.array_equal(a, alphas0):
            raise ValueError(
                f"{os.fspath(path)}: alphas {a.tolist()} differ from the first bundle's {alphas0.tolist()}"
            )
        if (lp is None) != (log_p0 is None) or (
            lp is not None and log_p0 is not None and not np.allclose(lp, log_p0, atol=1e-9)
        ):
            raise ValueError(
                f"{os.fspath(path)}: its prior differs from the first bundle's; pool bundles of one test set"
            )
    labels = np.concatenate([p[0] for p in parts])
    preds = np.concatenate([p[1] for p in parts], axis=1)
    log_p = log_p0
    if log_p is None:
        logger.warning(
            "no prior in the bundle: fitting p on the %d labels (fully-labelled rows, pseudocount 1)",
            labels.shape[0],
        )
        log_p = np.log(JointPrior.fit(labels, n_classes0, pseudocount=1.0).probs).reshape(-1)
    return ShiftInputs(
        labels=labels,
        predictions=preds,
        alphas=alphas0,
        log_p=log_p,
        n_classes=n_classes0,
        source={"bundles": [os.fspath(p) for p in paths]},
    )


def _load_pickle(path: Path, n_classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # noqa: S301 - the GMTL layout is pickles; documented as trusted input
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError,
            ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable GMTL prediction pickle (truncated or another format: "
                         f"{type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise ValueError(
            f"{path}: expected a pickled tuple (labels, predictions), got {type(obj).__name__}"
        )
    labels = check_labels(as_numpy(obj[0]), n_classes, name=f"{path}: labels")
    pred = np.asarray(as_numpy(obj[1]))
    if pred.shape != labels.shape:
        raise ValueError(
            f"{path}: predictions have shape {pred.shape} but labels have shape {labels.shape} (N, T)"
        )
    if pred.dtype.kind not in "iu":
        raise ValueError(f"{path}: predictions must be integer labels, got dtype {pred.dtype}")
    return labels, pred.astype(np.int64)


def _alpha_file(seed_dir: Path, raw: str) -> Path:
    candidates = [f"y_pred_{raw}.pkl", f"y_pred_{float(raw)}.pkl", f"y_pred_{float(raw):g}.pkl"]
    for c in candidates:
        if (seed_dir / c).is_file():
            return seed_dir / c
    have = sorted(f.name[len("y_pred_") : -len(".pkl")] for f in seed_dir.glob("y_pred_*.pkl"))
    raise ValueError(
        f"alpha {raw} has no prediction file in {seed_dir} (tried {candidates}); the files there "
        f"hold alphas {have} ('None' = alpha 0)"
    )


def load_log_prior(path: str | os.PathLike[str], n_classes: Sequence[int]) -> np.ndarray:
    """Read a ``torch.save``'d (or ``.npy``) flattened log prior; returns it normalised, flat."""
    n_classes = check_n_classes(n_classes)
    name = os.fspath(path)
    if not Path(name).is_file():
        raise ValueError(f"log prior file {name!r} does not exist")
    try:
        if name.endswith(".npy"):
            raw: Any = np.load(name, allow_pickle=False)
        else:
            import torch

            raw = torch.load(name, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, garbage, or a pickle holding more than tensors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"log prior file {name!r}: not a readable log prior (a torch.save'd tensor or "
                         f".npy array): {type(exc).__name__}: {reason[:200]}") from None
    return _normalise_log(raw, int(np.prod(n_classes)), f"log prior {name!r}")


def load_gmtl_dir(
    directory: str | os.PathLike[str],
    log_prior: str | os.PathLike[str],
    n_classes: Sequence[int],
    n_seeds: int,
    alphas: Sequence[str | float],
) -> ShiftInputs:
    """Read the GMTL layout (module docstring): α = 0 from ``y_pred_None.pkl``, then ``alphas``.

    ``alphas`` are matched to file names as given (``"0.1"``) or as Python prints the float
    (``1`` → ``"1.0"``). An α of 0 is read from ``y_pred_0.0.pkl`` if present, else from
    ``y_pred_None.pkl``. Returns predictions for ``[0.0, *alphas]`` (0 only once).
    """
    n_classes = check_n_classes(n_classes)
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an int >= 1, got {n_seeds!r}")
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"--gmtl-dir {os.fspath(directory)!r} is not a directory")
    raws = [str(a) for a in alphas]
    try:
        values = [float(a) for a in raws]
    except ValueError as exc:
        raise ValueError(f"alphas must be numbers, got {raws}") from exc
    check_alpha(values or [0.0], "alphas")
    if len(set(values)) != len(values):
        raise ValueError(f"alphas must be distinct, got {raws}")
    nonzero = [(r, v) for r, v in zip(raws, values) if v != 0.0]
    all_alphas = np.array([0.0] + [v for _, v in nonzero])
    labels_all, preds_all = [], []
    for i in range(n_seeds):
        seed_dir = root / f"s={i}"
        base = seed_dir / "y_pred_None.pkl"
        if not base.is_file():
            raise ValueError(f"{base} does not exist (seed {i} of --n-seeds {n_seeds})")
        zero_file = seed_dir / "y_pred_0.0.pkl"
        labels, pred0 = _load_pickle(zero_file if zero_file.is_file() else base, n_classes)
        preds = [pred0]
        for raw, _ in nonzero:
            path = _alpha_file(seed_dir, raw)
            lab, pred = _load_pickle(path, n_classes)
            if not np.array_equal(lab, labels):
                raise ValueError(
                    f"{path}: its labels differ from those in {base}; both must hold the same test set"
                )
            preds.append(pred)
        labels_all.append(labels)
        preds_all.append(np.stack(preds))
    return ShiftInputs(
        labels=np.concatenate(labels_all),
        predictions=np.concatenate(preds_all, axis=1),
        alphas=all_alphas,
        log_p=load_log_prior(log_prior, n_classes),
        n_classes=n_classes,
        source={
            "gmtl_dir": os.fspath(directory),
            "log_prior": os.fspath(log_prior),
            "n_seeds": int(n_seeds),
        },
    )


def write_gmtl_dir(
    directory: str | os.PathLike[str],
    seed_index: int,
    labels: np.ndarray,
    predictions: np.ndarray,
    alphas: Sequence[float],
    log_prior: np.ndarray | None = None,
    log_prior_name: str = "log_prior.pt",
) -> Path:
    """Write one seed's predictions in the GMTL authors' layout (the inverse of :func:`load_gmtl_dir`).

    ``DIR/s={seed_index}/y_pred_None.pkl`` holds α = 0 and ``y_pred_{alpha}.pkl`` every other α
    (the float as Python prints it: ``0.5``, ``1.0``), each a pickled tuple
    ``(labels, predictions)`` of int64 ``(N, T)`` arrays; with ``log_prior`` (the flattened,
    C-order log prior of the training labels) also ``DIR/{log_prior_name}``, a ``torch.save``'d
    1-D float tensor. Writing pickles is safe; *reading* them is for trusted files only.

    Parameters
    ----------
    predictions : int ``(A, N, T)``, decoded with ``alphas[a]``
    Returns the seed directory.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions)
    alphas = [float(a) for a in alphas]
    if predictions.ndim != 3 or predictions.shape[0] != len(alphas) or predictions.shape[1:] != labels.shape:
        raise ValueError(f"predictions must have shape (A, N, T) = ({len(alphas)}, {labels.shape[0]}, "
                         f"{labels.shape[1] if labels.ndim == 2 else '?'}), got {predictions.shape}")
    if len(set(alphas)) != len(alphas):
        raise ValueError(f"alphas must be distinct, got {alphas}")
    seed_dir = Path(directory) / f"s={int(seed_index)}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    for a, pred in zip(alphas, predictions):
        name = "y_pred_None.pkl" if a == 0.0 else f"y_pred_{a}.pkl"
        with open(seed_dir / name, "wb") as fh:
            pickle.dump((labels, pred.astype(np.int64)), fh)
    if log_prior is not None:
        import torch

        torch.save(torch.as_tensor(np.asarray(log_prior, dtype=np.float64).ravel()),
                   Path(directory) / log_prior_name)
    return seed_dir


__all__ = ["ShiftInputs", "load_bundles", "load_gmtl_dir", "load_log_prior", "write_gmtl_dir"]
