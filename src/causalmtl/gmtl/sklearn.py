"""A scikit-learn meta-estimator applying GMTL decoding to any multi-output classifier.

:class:`GMTLClassifier` wraps a probabilistic multi-output classifier (for example
``MultiOutputClassifier(LogisticRegression())``, or a ``ClassifierChain``, or any estimator
whose ``predict_proba`` returns one ``(n, C_t)`` array per output), fits the joint label
prior on the training targets (§3.2) and predicts with Eq. 6 (or the known-q objective).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from .decode import gmtl_decode, joint_log_posterior
from .prior import JointPrior, as_prior

_TINY = 1e-300


class GMTLClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """GMTL joint decoding on top of a multi-output probabilistic classifier.

    Parameters
    ----------
    estimator : a multi-output classifier with ``fit(X, Y)`` and ``predict_proba(X)``
        returning a list of T arrays ``(n, C_t)`` (the usual scikit-learn convention).
    alpha : float in [0, 1], default 1.0
        Strength of the prior correction in Eq. 6 (0 = DMTL).
    pseudocount : float, default 1.0
        Additive smoothing of the joint prior (§3.2).
    target_prior : array of shape ``n_classes``, optional
        A known test prior q; replaces α (§3.1).
    prefit : bool, default False
        If True, ``estimator`` is already fitted and is used as is (only the prior is fitted
        on ``y``); otherwise a clone of it is fitted on ``(X, y)``.

    Attributes
    ----------
    estimator_ : the fitted multi-output classifier
    prior_ : :class:`~causalmtl.gmtl.JointPrior` fitted on ``y``
    classes_ : list of T arrays, the class labels of each output
    n_classes_ : tuple of int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multioutput import MultiOutputClassifier
    >>> from causalmtl.gmtl.sklearn import GMTLClassifier
    >>> rng = np.random.default_rng(0)
    >>> Y = rng.integers(0, 2, size=(200, 2)); Y[:, 1] = Y[:, 0]   # correlated labels
    >>> X = Y + rng.normal(scale=1.0, size=(200, 2))
    >>> clf = GMTLClassifier(MultiOutputClassifier(LogisticRegression()), alpha=0.5).fit(X, Y)
    >>> clf.predict(X[:3]).shape
    (3, 2)
    """

    def __init__(
        self,
        estimator: Any,
        alpha: float = 1.0,
        pseudocount: float = 1.0,
        target_prior: Any = None,
        prefit: bool = False,
    ) -> None:
        self.estimator = estimator
        self.alpha = alpha
        self.pseudocount = pseudocount
        self.target_prior = target_prior
        self.prefit = prefit

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def fit(self, X: Any, y: Any) -> GMTLClassifier:
        """Fit the wrapped classifier (unless ``prefit``) and the joint prior on ``y``."""
        X, Y = validate_data(self, X, y, multi_output=True, dtype=None)
        Y = np.asarray(Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[1] < 2:
            raise ValueError(
                f"y must have at least 2 target columns for joint decoding, got shape {Y.shape}"
            )
        self.classes_ = []
        codes = np.empty(Y.shape, dtype=np.int64)
        for t in range(Y.shape[1]):
            cls, codes[:, t] = np.unique(Y[:, t], return_inverse=True)
            self.classes_.append(cls)
        self.estimator_ = self.estimator if self.prefit else clone(self.estimator).fit(X, Y)
        est_classes = getattr(self.estimator_, "classes_", None)
        if est_classes is not None and not isinstance(est_classes, np.ndarray):
            # align with the wrapped estimator's class order (it may know classes y lacks)
            self.classes_ = [np.asarray(c) for c in est_classes]
            codes = np.stack(
                [np.searchsorted(c, Y[:, t]) for t, c in enumerate(self.classes_)], axis=1
            )
        self.n_classes_ = tuple(len(c) for c in self.classes_)
        if any(c < 2 for c in self.n_classes_):
            raise ValueError(f"every output needs at least 2 classes, got {self.n_classes_}")
        self.prior_ = JointPrior.fit(codes, self.n_classes_, pseudocount=self.pseudocount)
        if self.target_prior is not None:
            q = as_prior(self.target_prior, name="target_prior")
            if q.n_classes != self.n_classes_:
                raise ValueError(
                    f"target_prior has n_classes {q.n_classes} but y has {self.n_classes_}"
                )
        return self

    def _log_probs(self, X: Any) -> list[np.ndarray]:
        check_is_fitted(self, "prior_")
        X = validate_data(self, X, reset=False, dtype=None)
        probs = self.estimator_.predict_proba(X)
        if not isinstance(probs, (list, tuple)) or len(probs) != len(self.n_classes_):
            raise ValueError(
                "estimator.predict_proba must return a list of one (n, C_t) array per output; "
                f"got {type(probs).__name__}"
            )
        return [np.log(np.clip(np.asarray(p, dtype=np.float64), _TINY, None)) for p in probs]

    def _decode_kwargs(self) -> dict[str, Any]:
        if self.target_prior is not None:
            return {"q": self.target_prior}
        return {"alpha": self.alpha}

    def predict(self, X: Any) -> np.ndarray:
        """Joint GMTL prediction, an ``(n, T)`` array of class labels."""
        codes = gmtl_decode(self._log_probs(X), self.prior_, normalized=False, **self._decode_kwargs()).labels
        return np.stack([c[codes[:, t]] for t, c in enumerate(self.classes_)], axis=1)

    def predict_joint_proba(self, X: Any) -> np.ndarray:
        """The normalised GMTL-adjusted joint distribution, shape ``(n, C_1, …, C_T)``.

        ``r(y|x) ∝ Π_t p(y_t|x) · p(y)^(−α)`` (or ``· q(y)/p(y)`` with a target prior), whose
        argmax is :meth:`predict`.
        """
        lp = self._log_probs(X)
        if self.target_prior is None:
            return np.exp(joint_log_posterior(lp, self.prior_, alpha=self.alpha))
        scores = gmtl_decode(lp, self.prior_, q=self.target_prior, scores=True, normalized=False).scores
        s = scores.reshape(len(scores), -1)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return (s / s.sum(axis=1, keepdims=True)).reshape(scores.shape)

    def predict_proba(self, X: Any) -> list[np.ndarray]:
        """Per-output marginals of :meth:`predict_joint_proba` (a list of T ``(n, C_t)`` arrays)."""
        joint = self.predict_joint_proba(X)
        T = len(self.n_classes_)
        return [joint.sum(axis=tuple(a + 1 for a in range(T) if a != t)) for t in range(T)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Exact-match accuracy of the joint prediction (all outputs right)."""
        Y = np.asarray(y)
        pred = self.predict(X)
        hits = (pred == Y.reshape(pred.shape)).all(axis=1)
        return float(np.average(hits, weights=sample_weight))
