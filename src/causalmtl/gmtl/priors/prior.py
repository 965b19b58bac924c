"""The joint label prior p(y_1, …, y_T) of GMTL (Makino et al. 2022, §3.2).

The maximum-likelihood estimate counts the fully-labelled rows of each joint class and
divides by their number; additive smoothing adds a pseudocount ε > 0 to *every* joint cell
before normalising, so that unseen combinations keep a non-zero probability and
``log p(y)`` in the GMTL objective (Eq. 6) stays finite. Rows with any missing label (``-1``)
are excluded, as the paper prescribes ("the counting approach only works with the subset of
examples for which all targets are present").

Exact zeros
-----------
A prior fitted with ``pseudocount=0`` (or built with :meth:`JointPrior.from_probs` from a
table with zeros) may hold cells with probability 0. Such a prior is valid as a description
of the data, but GMTL's ``−α log p(y)`` is ``+inf`` there. :func:`causalmtl.gmtl.gmtl_decode`
therefore **refuses** (``ValueError``) a prior with zero cells whenever the prior term is
used (α > 0 or a target prior q), naming the number of zero cells and the first one; at
α = 0 the prior is not used and no error is raised. :attr:`JointPrior.has_zeros` tells in
advance.

File format
-----------
:meth:`JointPrior.save` writes a NumPy ``.npz`` archive with the keys

``format``       the string ``"causalmtl.JointPrior/1"``
``n_classes``    int64 ``(T,)``
``probs``        float64 array of shape ``n_classes`` (sums to 1)
``counts``       float64 array of shape ``n_classes`` (raw counts before smoothing), or an
                 empty array when the prior was not fitted from labels
``pseudocount``  float64 scalar
``n_fitted``     int64 scalar, the number of fully-labelled rows counted

and :meth:`JointPrior.load` reads it back (``allow_pickle=False``), checking every key: a
file that is not such an archive, lacks a key, or holds a table that is not a probability
distribution (NaN, negative, sum ≠ 1) raises a ``ValueError`` that names the file.

Size limit
----------
A dense table has ``Π_t C_t`` cells (2**27 for 27 binary tasks: 1 GiB per copy).
:meth:`JointPrior.fit` and :meth:`JointPrior.uniform` refuse more than ``max_cells``
(default :data:`MAX_JOINT_CELLS` = 2**24 = 16,777,216 cells, 128 MiB per copy) *before*
allocating anything, and point to :class:`~causalmtl.gmtl.TreePrior`, whose size grows
linearly in T (docs/many_tasks.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

import numpy as np

from ..._validation import (
    MAX_JOINT_CELLS,
    as_float,
    as_int,
    as_numpy,
    check_joint_size,
    check_labels,
    check_n_classes,
    check_probability_vector,
)

FORMAT = "causalmtl.JointPrior/1"


@runtime_checkable
class Prior(Protocol):
    """What GMTL decoding (Eq. 6), EM and the shift evaluation need from a joint label prior.

    Implemented by :class:`JointPrior` (the full table, ``structure = "table"``) and
    :class:`~causalmtl.gmtl.TreePrior` (a Chow–Liu tree, ``structure = "tree"``).

    Convention: a prior object holds **probabilities** (``probs``, ``marginal``,
    ``pair_marginal``) and gives their logarithms through the ``log_*`` accessors
    (``log 0 = -inf``). Every prior parameter of gmtl and shift accepts a prior object. A bare
    array is read by the parameter's name: ``prior``, ``p``, ``q`` take a probability table
    (:func:`as_prior`, the shift importance weights), ``log_p``, ``log_q`` a log table (the
    shift samplers, τ and ``evaluate_shift``: :func:`causalmtl.shift.flat_log_prior`) — pass
    the object to avoid the question.

    The objective's two prior parts (Makino et al. 2022, Eq. 6 split as in
    :mod:`causalmtl.gmtl.decoding.objective`) come from ``log_marginals()`` (the marginal part
    ``Σ_t log p(y_t)``) and ``table_log_prob()`` (``log p(y)``; the dependence part is their
    difference); a tree also offers them per edge (``TreePrior.pmi``).
    """

    structure: ClassVar[str]

    @property
    def n_classes(self) -> tuple[int, ...]: ...

    @property
    def n_tasks(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def has_zeros(self) -> bool: ...

    @property
    def probs(self) -> np.ndarray: ...

    @property
    def log_prob(self) -> np.ndarray: ...

    def marginal(self, task: int) -> np.ndarray: ...

    def marginals(self) -> list[np.ndarray]: ...

    def log_marginals(self) -> list[np.ndarray]: ...

    def pair_marginal(self, s: int, t: int) -> np.ndarray: ...

    def log_pmf(self, labels: Any) -> np.ndarray: ...

    def table_log_prob(self, max_size: int = ...) -> np.ndarray: ...

    def to_joint(self, max_size: int = ...) -> JointPrior: ...

    def zero_summary(self) -> str: ...


@dataclass(frozen=True, eq=False)
class JointPrior:
    """A joint distribution over the labels of T categorical tasks.

    Build it with :meth:`fit`, :meth:`from_counts` or :meth:`from_probs`, not directly.

    Attributes
    ----------
    n_classes : tuple of int
        Classes per task, ``(C_1, …, C_T)``.
    probs : ndarray of shape ``n_classes``
        The joint probabilities; the joint index of ``(y_1, …, y_T)`` is C-order
        (``numpy.ravel_multi_index``).
    counts : ndarray of shape ``n_classes`` or None
        Raw counts before smoothing (None when built from probabilities).
    pseudocount : float
        The ε added to every cell before normalising.
    n_fitted : int
        Number of fully-labelled rows that were counted (0 when built from probabilities).

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import JointPrior
    >>> labels = np.array([[0, 0], [0, 0], [1, 1], [1, -1]])
    >>> prior = JointPrior.fit(labels, n_classes=(2, 2), pseudocount=1.0)
    >>> prior.n_fitted          # the row with a missing label is excluded
    3
    >>> prior.probs             # (counts + 1) / (3 + 4)
    array([[0.42857143, 0.14285714],
           [0.14285714, 0.28571429]])
    """

    n_classes: tuple[int, ...]
    probs: np.ndarray
    counts: np.ndarray | None = None
    pseudocount: float = 0.0
    n_fitted: int = 0
    #: The decoding kernel this prior is decoded with by default (:class:`Prior`).
    structure: ClassVar[str] = "table"

    # --- construction ----------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        labels: Any,
        n_classes: Sequence[int],
        pseudocount: float = 1.0,
        *,
        max_cells: int = MAX_JOINT_CELLS,
    ) -> JointPrior:
        """Estimate the joint prior by counting fully-labelled rows, with additive smoothing.

        Parameters
        ----------
        labels : int array ``(N, T)``, ``-1`` where a label is missing
        n_classes : classes per task
        pseudocount : ε ≥ 0 added to every joint cell before normalising (§3.2)
        max_cells : refuse a table of more than this many cells (module docstring, "Size limit")

        Raises
        ------
        ValueError
            On labels outside ``[-1, C_t)``, a wrong number of tasks, a negative
            pseudocount, ``Π C_t > max_cells``, or when no row is fully labelled and
            ``pseudocount == 0``.
        """
        n_classes = check_n_classes(n_classes)
        as_float(pseudocount, "pseudocount", low=0)
        check_joint_size(n_classes, max_cells)
        lab = check_labels(labels, n_classes)
        full = (lab >= 0).all(axis=1)
        flat = np.ravel_multi_index(lab[full].T, n_classes)
        counts = np.bincount(flat, minlength=int(np.prod(n_classes))).astype(np.float64)
        return cls.from_counts(counts.reshape(n_classes), pseudocount=pseudocount)

    @classmethod
    def from_counts(cls, counts: Any, pseudocount: float = 0.0) -> JointPrior:
        """Build a prior from a table of counts of shape ``n_classes`` (plus smoothing)."""
        c = np.asarray(as_numpy(counts), dtype=np.float64)
        if c.ndim < 1 or c.size == 0:
            raise ValueError(f"counts must be a non-empty table of shape n_classes, got shape {c.shape}")
        n_classes = check_n_classes(c.shape, name="counts.shape")
        if not np.all(np.isfinite(c)) or (c < 0).any():
            i = tuple(int(j) for j in np.argwhere(~np.isfinite(c) | (c < 0))[0])
            raise ValueError(f"counts must be finite and non-negative, got {c[i]!r} at index {i}")
        eps = as_float(pseudocount, "pseudocount", low=0)
        total = c.sum() + eps * c.size
        if total <= 0:
            raise ValueError(
                "cannot normalise: no fully-labelled row was counted and pseudocount is 0; "
                "give labelled rows or a pseudocount > 0"
            )
        probs = (c + eps) / total
        return cls(n_classes=n_classes, probs=probs, counts=c, pseudocount=eps,
                   n_fitted=int(round(c.sum())))

    @classmethod
    def from_probs(cls, probs: Any, atol: float = 1e-6) -> JointPrior:
        """Wrap a joint probability table of shape ``n_classes`` (must sum to 1 within ``atol``)."""
        p = np.asarray(as_numpy(probs))
        if p.dtype.kind not in "iuf":
            raise TypeError(f"probs must be a numeric table of probabilities, got {probs!r:.60} (dtype {p.dtype})")
        p = p.astype(np.float64)
        if p.ndim < 1 or p.size == 0:
            raise ValueError(f"probs must be a non-empty table of shape n_classes, got shape {p.shape}")
        n_classes = check_n_classes(p.shape, name="probs.shape")
        p = check_probability_vector(p, "probs", atol=atol)
        return cls(n_classes=n_classes, probs=p / p.sum())

    @classmethod
    def uniform(cls, n_classes: Sequence[int], *, max_cells: int = MAX_JOINT_CELLS) -> JointPrior:
        """The uniform prior (GMTL at α = 1 is decoding against it, §3.1)."""
        n_classes = check_n_classes(n_classes)
        check_joint_size(n_classes, max_cells)
        return cls(n_classes=n_classes, probs=np.full(n_classes, 1.0 / np.prod(n_classes)))

    # --- views -----------------------------------------------------------------------
    @property
    def n_tasks(self) -> int:
        return len(self.n_classes)

    @property
    def size(self) -> int:
        """Number of joint classes K = Π_t C_t."""
        return int(self.probs.size)

    @property
    def log_prob(self) -> np.ndarray:
        """``log p(y)`` as an array of shape ``n_classes`` (``-inf`` at exact zeros)."""
        with np.errstate(divide="ignore"):
            ret: np.ndarray = np.log(self.probs)
            return ret

    @property
    def has_zeros(self) -> bool:
        """True when some joint cell has probability exactly 0 (see the module docstring)."""
        return bool((self.probs == 0).any())

    def marginal(self, task: int) -> np.ndarray:
        """The marginal ``p(y_task)``, shape ``(C_task,)``."""
        if not 0 <= as_int(task, "task", low=0) < self.n_tasks:
            raise ValueError(f"task must be an int in [0, {self.n_tasks}), got {task!r}")
        axes = tuple(a for a in range(self.n_tasks) if a != int(task))
        ret: np.ndarray = self.probs.sum(axis=axes)
        return ret

    def marginals(self) -> list[np.ndarray]:
        """Every task's marginal, a list of T arrays."""
        return [self.marginal(t) for t in range(self.n_tasks)]

    def log_marginals(self) -> list[np.ndarray]:
        """Every task's ``log p(y_t)`` (``-inf`` at zeros), a list of T arrays."""
        with np.errstate(divide="ignore"):
            return [np.log(m) for m in self.marginals()]

    def pair_marginal(self, s: int, t: int) -> np.ndarray:
        """``p(y_s, y_t)`` of shape ``(C_s, C_t)`` (rows: task ``s``)."""
        s, t = int(s), int(t)
        if not (0 <= s < self.n_tasks and 0 <= t < self.n_tasks and s != t):
            raise ValueError(f"s, t must be two distinct tasks in [0, {self.n_tasks}), got ({s}, {t})")
        return self.marginalize([s, t]).probs

    def log_pmf(self, labels: Any) -> np.ndarray:
        """``log p(y)`` of each row of a complete ``(N, T)`` label array."""
        lab = check_labels(labels, self.n_classes, allow_missing=False)
        ret: np.ndarray = self.log_prob[tuple(lab.T)]
        return ret

    def table_log_prob(self, max_size: int | None = None) -> np.ndarray:
        """``log p(y)`` over the product space, shape ``n_classes`` (the table itself)."""
        return self.log_prob

    def to_joint(self, max_size: int | None = None) -> JointPrior:
        """The full-table prior: this one."""
        return self

    def zero_summary(self) -> str:
        """Which cells are 0, in words (for error messages); ``""`` when there are none."""
        zeros = np.argwhere(self.probs == 0)
        if not len(zeros):
            return ""
        return f"{len(zeros)} joint cells with probability 0 (first: {tuple(int(i) for i in zeros[0])})"

    def marginalize(self, keep: Sequence[int]) -> JointPrior:
        """The prior over the tasks in ``keep`` (in that order), summing out the others."""
        if isinstance(keep, (str, bytes)) or not hasattr(keep, "__iter__"):
            raise TypeError(f"keep must be a sequence of task indices, got {keep!r}")
        keep = [as_int(k, "keep[]", low=0) for k in keep]
        if not keep or len(set(keep)) != len(keep) or not all(0 <= k < self.n_tasks for k in keep):
            raise ValueError(f"keep must be distinct task indices in [0, {self.n_tasks}), got {keep}")
        drop = tuple(a for a in range(self.n_tasks) if a not in keep)
        p = self.probs.sum(axis=drop)
        order = np.argsort(np.argsort(keep))  # axes of p are in increasing task order
        p = np.transpose(p, axes=tuple(order))
        return JointPrior(n_classes=tuple(self.n_classes[k] for k in keep), probs=p)

    def __repr__(self) -> str:
        return (
            f"JointPrior(n_classes={self.n_classes}, pseudocount={self.pseudocount}, "
            f"n_fitted={self.n_fitted}, zeros={int((self.probs == 0).sum())})"
        )

    # --- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the prior to ``path`` in the documented ``.npz`` format (module docstring)."""
        np.savez(
            path,
            format=np.array(FORMAT),
            n_classes=np.asarray(self.n_classes, dtype=np.int64),
            probs=self.probs,
            counts=np.empty(0) if self.counts is None else self.counts,
            pseudocount=np.float64(self.pseudocount),
            n_fitted=np.int64(self.n_fitted),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> JointPrior:
        """Read a prior written by :meth:`save`, validating it (module docstring).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            Naming the file, if it is not a JointPrior archive (not a zip/npz, wrong
            ``format``, a missing key) or its table is not a probability distribution.
        """
        import zipfile

        where = repr(os.fspath(path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"JointPrior file {where} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"{where} is a directory, expected a JointPrior .npz file written by JointPrior.save")
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(
                f"{where} is not a JointPrior file (expected a .npz archive written by "
                f"JointPrior.save; reading it failed: {exc.__class__.__name__})"
            ) from exc
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{where} is a single .npy array, not a JointPrior .npz archive")
        try:
            with z:
                fmt = str(z["format"]) if "format" in z.files else None
                if fmt != FORMAT:
                    raise ValueError(f"{where} is not a JointPrior file (format {fmt!r}, expected {FORMAT!r})")
                missing = [k for k in ("n_classes", "probs", "counts", "pseudocount", "n_fitted") if k not in z.files]
                if missing:
                    raise ValueError(f"{where}: JointPrior file lacks the keys {missing} (truncated or hand-made?)")
                n_classes = check_n_classes(z["n_classes"].tolist(), name=f"{where}: n_classes")
                probs = z["probs"]
                counts = z["counts"]
                pseudocount = z["pseudocount"]
                n_fitted = z["n_fitted"]
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ValueError(f"{where}: JointPrior archive is damaged ({exc})") from exc
        if probs.shape != n_classes:
            raise ValueError(f"{where}: probs shape {probs.shape} != n_classes {n_classes}")
        probs = check_probability_vector(probs, f"{where}: probs")
        if counts.size and (counts.shape != n_classes or not np.all(np.isfinite(counts)) or (counts < 0).any()):
            raise ValueError(f"{where}: counts must be empty or a finite non-negative table of shape {n_classes}")
        return cls(
            n_classes=n_classes,
            probs=probs,
            counts=None if counts.size == 0 else counts.astype(np.float64),
            pseudocount=as_float(pseudocount, f"{where}: pseudocount", low=0),
            n_fitted=as_int(n_fitted, f"{where}: n_fitted", low=0),
        )


def as_prior(prior: Any, name: str = "prior") -> JointPrior:
    """Accept a :class:`JointPrior` or a probability table of shape ``n_classes`` (a
    :class:`~causalmtl.gmtl.TreePrior` is turned into its full table)."""
    if isinstance(prior, JointPrior):
        return prior
    try:
        return JointPrior.from_probs(prior)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def as_any_prior(prior: Any, name: str = "prior") -> Prior:
    """Accept any :class:`Prior` as it is (table or tree), or a probability table."""
    # a class-level check: isinstance(prior, Prior) would evaluate a tree's ``probs`` table
    if getattr(type(prior), "structure", None) in ("table", "tree"):
        return cast(Prior, prior)  # the protocol's class-level tag (see above)
    return as_prior(prior, name=name)


def gmtl_taskonomy_prior(splits: Any, pseudocount: float = 1.0, split: str = "train") -> Any:
    """The GMTL joint prior ``p(object, scene)`` of a split (100 × 64 with the paper's lists).

    Counts of the fully-labelled ``(object, scene)`` rows plus ``pseudocount`` in every cell,
    normalised (GMTL §3.2; the authors' ``make_log_prior``): :meth:`causalmtl.JointPrior.fit`.
    """
    ds = getattr(splits, split)
    ds = ds.select_tasks(["object", "scene"])
    return JointPrior.fit(ds.labels, ds.n_classes, pseudocount=pseudocount)
