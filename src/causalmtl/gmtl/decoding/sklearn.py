"""A scikit-learn meta-estimator applying GMTL decoding to any multi-output classifier.

:class:`GMTLClassifier` wraps a probabilistic multi-output classifier (for example
``MultiOutputClassifier(LogisticRegression())``, or a ``ClassifierChain``, or any estimator
whose ``predict_proba`` returns one ``(n, C_t)`` array per output), fits the joint label
prior on the training targets (§3.2) and predicts with Eq. 6 (or the known-q objective).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..._validation import as_float, as_int, check_alpha, check_bool
from ..priors.prior import JointPrior, as_prior
from .decode import gmtl_decode, joint_log_posterior
from .select import main_task_accuracy, select_alpha

_TINY = 1e-300


class GMTLClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn has no stubs
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
    >>> from causalmtl.gmtl.decoding.sklearn import GMTLClassifier
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

    def __sklearn_tags__(self) -> Any:  # sklearn.utils.Tags (scikit-learn ships no stubs)
        # Multi-output only: scikit-learn's checks then give y as one column (n, 1), which
        # GMTL handles (with T = 1, Eq. 6 is the prior correction log p(y|x) − α log p(y)).
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.target_tags.required = True
        return tags

    def _check_params(self) -> None:
        check_alpha(self.alpha)
        if np.ndim(self.alpha) != 0:
            raise ValueError(
                f"alpha must be one number in [0, 1], got {self.alpha!r}; to choose among several "
                "use GMTLClassifierCV(alphas=...)"
            )
        as_float(self.pseudocount, "pseudocount", low=0)
        check_bool(self.prefit, "prefit")

    def fit(self, X: Any, y: Any) -> GMTLClassifier:
        """Fit the wrapped classifier (unless ``prefit``) and the joint prior on ``y``.

        ``y`` is ``(n, T)``: one column per output (a 1-D ``y`` is one output, T = 1, for
        which GMTL is the single-task prior correction; :meth:`predict` then returns 1-D).
        """
        self._check_params()
        X, Y = validate_data(self, X, y, multi_output=True, dtype=None)
        Y = np.asarray(Y)
        self._y_1d = Y.ndim == 1
        if Y.ndim == 1:
            Y = Y[:, None]
        for t in range(Y.shape[1]):
            check_classification_targets(Y[:, t])
        self.classes_ = []
        codes = np.empty(Y.shape, dtype=np.int64)
        for t in range(Y.shape[1]):
            cls, codes[:, t] = np.unique(Y[:, t], return_inverse=True)
            self.classes_.append(cls)
        if not self.prefit:
            self._refuse_one_class([len(c) for c in self.classes_])
        self.estimator_ = self.estimator if self.prefit else clone(self.estimator).fit(X, Y)
        est_classes = getattr(self.estimator_, "classes_", None)
        if est_classes is not None and not isinstance(est_classes, np.ndarray):
            # align with the wrapped estimator's class order (it may know classes y lacks)
            self.classes_ = [np.asarray(c) for c in est_classes]
            codes = np.stack(
                [np.searchsorted(c, Y[:, t]) for t, c in enumerate(self.classes_)], axis=1
            )
        self.n_classes_ = tuple(len(c) for c in self.classes_)
        self._refuse_one_class(self.n_classes_)
        self.prior_ = JointPrior.fit(codes, self.n_classes_, pseudocount=self.pseudocount)
        if self.target_prior is not None:
            q = as_prior(self.target_prior, name="target_prior")
            if q.n_classes != self.n_classes_:
                raise ValueError(
                    f"target_prior has n_classes {q.n_classes} but y has {self.n_classes_}"
                )
        return self

    def _refuse_one_class(self, n_classes: Any) -> None:
        if min(n_classes) < 2:
            t = int(np.argmin(n_classes))
            raise ValueError(
                f"output {t} of y has only one class ({np.asarray(self.classes_[t]).tolist()}); "
                f"every output needs at least 2 classes, got n_classes {tuple(n_classes)}"
            )

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

    def _decode(self, log_probs: list[np.ndarray]) -> np.ndarray:
        if len(log_probs) > 1:
            return gmtl_decode(log_probs, self.prior_, normalized=False, **self._decode_kwargs()).labels
        # one output: Eq. 6 is argmax_y log p(y|x) − α log p(y) (or + log q(y) − log p(y))
        with np.errstate(divide="ignore"):
            log_p = np.log(self.prior_.probs)
            if self.target_prior is not None:
                direction = np.log(as_prior(self.target_prior).probs) - log_p
            else:
                direction = -float(check_alpha(self.alpha)[0]) * log_p
        ret: np.ndarray = np.argmax(log_probs[0] + direction[None, :], axis=1)[:, None]
        return ret

    def predict(self, X: Any) -> np.ndarray:
        """Joint GMTL prediction, an ``(n, T)`` array of class labels."""
        codes = self._decode(self._log_probs(X))
        pred = np.stack([c[codes[:, t]] for t, c in enumerate(self.classes_)], axis=1)
        return pred[:, 0] if getattr(self, "_y_1d", False) else pred

    def predict_joint_proba(self, X: Any) -> np.ndarray:
        """The normalised GMTL-adjusted joint distribution, shape ``(n, C_1, …, C_T)``.

        ``r(y|x) ∝ Π_t p(y_t|x) · p(y)^(−α)`` (or ``· q(y)/p(y)`` with a target prior), whose
        argmax is :meth:`predict`.
        """
        lp = self._log_probs(X)
        if self.target_prior is None:
            ret: np.ndarray = np.exp(joint_log_posterior(lp, self.prior_, alpha=self.alpha))
            return ret
        scores = gmtl_decode(lp, self.prior_, q=self.target_prior, scores=True, normalized=False).scores
        assert scores is not None  # scores=True always fills them
        s = scores.reshape(len(scores), -1)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        proba: np.ndarray = (s / s.sum(axis=1, keepdims=True)).reshape(scores.shape)
        return proba

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


#: The scikit-learn estimator checks a multi-output-only joint decoder fails by design, with
#: why; pass it as ``check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS)``.
EXPECTED_FAILED_CHECKS = {
    "check_classifier_multioutput": "predict is the joint MAP of Eq. 6, which differs from the "
    "per-output argmax of predict_proba by design",
    "check_classifiers_classes": "classes_ is a list of one array per output (the multi-output "
    "convention of MultiOutputClassifier), not one array",
    "check_classifiers_train": "a one-column y of shape (n, 1) is predicted as (n, 1); the check "
    "wants the single-output shape (n,)",
    "check_methods_sample_order_invariance": "predict_proba returns a list of T arrays (the "
    "multi-output convention); the check indexes it as one array",
}


class GMTLClassifierCV(GMTLClassifier):
    """:class:`GMTLClassifier` whose α is chosen by cross-validation with the §3.1 heuristic.

    Plain ``GridSearchCV`` over ``alpha`` maximises the *in-distribution* score of the
    validation folds; i.i.d. folds follow the training prior, which α > 0 divides out, so it
    picks α = 0 (DMTL) and GMTL never acts. The paper's heuristic instead takes "the maximum
    value [of α] within an acceptable loss in ID predictive performance" (§3.1): the largest α
    whose main-task accuracy is within ``tolerance`` of α = 0's. This estimator applies it to
    out-of-fold predictions: for each fold a clone of ``estimator`` and the joint prior are
    fitted on the other folds, the fold is decoded for every α of ``alphas``
    (:func:`~causalmtl.gmtl.select_alpha`), the per-fold curves are averaged (weighted by the
    fold's labelled rows, so accuracy is pooled) and the largest acceptable α is kept; then
    the estimator is refitted on all the data with that α.

    It is an ordinary scikit-learn estimator: ``cross_val_score`` and ``GridSearchCV`` (over
    ``tolerance``, the wrapped estimator's parameters, …) work on it.

    Parameters
    ----------
    estimator, pseudocount, prefit : as :class:`GMTLClassifier` (``prefit`` is refused: the
        folds need refitting)
    alphas : grid of α in [0, 1] (default ``0, 0.1, …, 1``; 0 is always added)
    tolerance, mode, main_task : as :func:`~causalmtl.gmtl.select_alpha`
    cv : int, splitter or iterable, default 5 (``KFold``: stratification is not defined for
        several outputs)

    Attributes
    ----------
    alpha_ : the chosen α
    cv_curve_ : DataFrame ``alpha``, ``metric`` (mean over folds), ``acceptable``
    estimator_, prior_, classes_, n_classes_ : as :class:`GMTLClassifier`, refitted on all data

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multioutput import MultiOutputClassifier
    >>> from causalmtl import GMTLClassifierCV
    >>> rng = np.random.default_rng(0)
    >>> Y = rng.integers(0, 2, size=(300, 2)); Y[:, 1] = np.where(rng.random(300) < 0.9, Y[:, 0], 1 - Y[:, 0])
    >>> X = Y + rng.normal(size=(300, 2))
    >>> clf = GMTLClassifierCV(MultiOutputClassifier(LogisticRegression()), tolerance=0.02, cv=3).fit(X, Y)
    >>> 0.0 <= clf.alpha_ <= 1.0, clf.predict(X[:2]).shape
    (True, (2, 2))
    """

    def __init__(
        self,
        estimator: Any,
        alphas: Any = None,
        tolerance: float = 0.01,
        mode: str = "absolute",
        main_task: int = 0,
        cv: Any = 5,
        pseudocount: float = 1.0,
    ) -> None:
        self.estimator = estimator
        self.alphas = alphas
        self.tolerance = tolerance
        self.mode = mode
        self.main_task = main_task
        self.cv = cv
        self.pseudocount = pseudocount

    # GMTLClassifier reads these; the CV variant has no fixed α, no q and always refits
    target_prior = None
    prefit = False

    def _check_params(self) -> None:
        as_float(self.pseudocount, "pseudocount", low=0)
        as_float(self.tolerance, "tolerance", low=0)
        as_int(self.main_task, "main_task", low=0)
        if self.mode not in ("absolute", "relative"):
            raise ValueError(f"mode must be 'absolute' or 'relative', got {self.mode!r}")

    def _decode_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.alpha_}

    @property
    def alpha(self) -> float:  # type: ignore[override]  # the CV class chooses α: the parent's attribute is alpha_ here
        """The chosen α (``alpha_``), so that GMTLClassifier's methods decode with it."""
        check_is_fitted(self, "alpha_")
        return self.alpha_

    def fit(self, X: Any, y: Any) -> GMTLClassifierCV:
        """Choose α by cross-validation (class docstring), then fit on all of ``(X, y)``."""
        from sklearn.model_selection import check_cv

        self._check_params()
        grid = check_alpha(np.linspace(0, 1, 11) if self.alphas is None else self.alphas, name="alphas")
        grid = np.unique(np.concatenate([[0.0], grid]))
        X_arr, Y = validate_data(self, X, y, multi_output=True, dtype=None)
        Y = np.asarray(Y).reshape(len(Y), -1)
        if not 0 <= int(self.main_task) < Y.shape[1]:
            raise ValueError(f"main_task must be in [0, {Y.shape[1]}), got {self.main_task!r}")
        classes = [np.unique(Y[:, t]) for t in range(Y.shape[1])]
        codes = np.stack([np.searchsorted(c, Y[:, t]) for t, c in enumerate(classes)], axis=1)
        n_classes = tuple(len(c) for c in classes)
        splitter = check_cv(self.cv, classifier=False)
        weighted = np.zeros(len(grid))
        total = 0
        for train, val in splitter.split(X_arr, Y):
            fold = GMTLClassifier(self.estimator, alpha=0.0, pseudocount=self.pseudocount).fit(X_arr[train], Y[train])
            # per-output log-probabilities on the full class set (a fold may lack a class)
            lp = []
            for t, (c_fold, c_all) in enumerate(zip(fold.classes_, classes)):
                out = np.full((len(val), len(c_all)), np.log(_TINY))
                out[:, np.searchsorted(c_all, c_fold)] = fold._log_probs(X_arr[val])[t]
                lp.append(out - np.logaddexp.reduce(out, axis=1, keepdims=True))
            prior = JointPrior.fit(codes[train], n_classes, pseudocount=float(self.pseudocount))
            sel = select_alpha(lp, codes[val], prior, alphas=grid, main_task=int(self.main_task),
                               tolerance=float(self.tolerance), mode=cast(Literal["absolute", "relative"], self.mode),  # checked above
                               metric=main_task_accuracy)
            weighted += sel.curve["metric"].to_numpy() * len(val)
            total += len(val)
        metric = weighted / total
        ref = metric[0]
        margin = float(self.tolerance) if self.mode == "absolute" else abs(ref) * float(self.tolerance)
        acceptable = metric >= ref - margin - 1e-12
        self.alpha_ = float(grid[np.flatnonzero(acceptable).max()])
        import pandas as pd

        self.cv_curve_ = pd.DataFrame({"alpha": grid, "metric": metric, "acceptable": acceptable})
        return super().fit(X, y)
