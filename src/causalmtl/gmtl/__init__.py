"""GMTL inference (Makino, Geras & Cho, NeurIPS 2022): joint prior, joint decoding, α.

Layout — three sub-packages that import one way only, ``priors`` ← ``decoding`` ← ``unknown_q``
← the top modules (checked by tests/test_import_graph.py):

* :mod:`.priors` — the :class:`Prior` protocol, :class:`JointPrior` (full table) and
  :class:`TreePrior` (Chow–Liu tree);
* :mod:`.decoding` — the paper's decoding: :func:`gmtl_decode` (Eq. 6 / S1 / known q; table
  and tree kernels, numpy and torch), :func:`select_alpha`, the scikit-learn wrappers;
* :mod:`.unknown_q` — calibration, EM for q, :func:`adapt`;
* top: :mod:`.cli`, :mod:`.demo` and :mod:`.scaling` (the many-tasks benchmark helper).

The docs' topics map onto files as follows:

* the paper's decoding (docs/gmtl.md): ``priors/prior.py``, ``decoding/*``;
* many tasks (docs/many_tasks.md): ``priors/tree.py`` (the tree prior),
  ``decoding/tree_infer.py`` (its kernel), ``decoding/objective.py`` (split α),
  ``decoding/structured.py`` (``fit_prior``), ``unknown_q/tree_em.py`` (EM on a tree),
  ``scaling.py`` — spread over the layers, because the decoder and the EM both need the tree
  prior (a package of its own would import and be imported by ``decoding``);
* unknown q (docs/unknown_q.md): ``unknown_q/*``.

>>> import numpy as np
>>> from causalmtl.gmtl import JointPrior, gmtl_decode
>>> prior = JointPrior.fit(np.array([[0, 0], [1, 1], [1, 1]]), n_classes=(2, 2))
>>> gmtl_decode([np.log([[0.5, 0.5]]), np.log([[0.3, 0.7]])], prior, alpha=1.0).labels
array([[0, 1]])
"""

from .decoding.decode import (
    Decoded,
    DecodeInfo,
    decode,
    gmtl_decode,
    independent_argmax,
    joint_log_posterior,
)
from .decoding.select import AlphaSelection, main_task_accuracy, select_alpha
from .decoding.structured import decode_structured, fit_prior
from .priors.prior import JointPrior, Prior, as_prior, gmtl_taskonomy_prior
from .priors.tree import TreePrior
from .unknown_q.adapt import (
    AdaptResult,
    adapt,
    alpha_from_severity,
    decode_adapted,
    gmtl_log_likelihood,
)
from .unknown_q.calibrate import (
    BCTSCalibrator,
    CrossTaskScaling,
    TemperatureScaling,
    VectorScaling,
    calibration_report,
    make_calibrator,
)
from .unknown_q.em import EMResult, bbse, estimate_prior_em
from .unknown_q.score_model import GaussianScoreModel
from .unknown_q.smoothing_cv import SmoothingCVResult, select_smoothing_cv
from .unknown_q.tree_em import estimate_tree_prior_em

__all__ = [
    "AdaptResult",
    "BCTSCalibrator",
    "CrossTaskScaling",
    "EMResult",
    "GaussianScoreModel",
    "SmoothingCVResult",
    "TemperatureScaling",
    "VectorScaling",
    "adapt",
    "alpha_from_severity",
    "bbse",
    "calibration_report",
    "decode_adapted",
    "estimate_prior_em",
    "estimate_tree_prior_em",
    "gmtl_log_likelihood",
    "make_calibrator",
    "AlphaSelection",
    "DecodeInfo",
    "Decoded",
    "JointPrior",
    "gmtl_taskonomy_prior",
    "Prior",
    "TreePrior",
    "as_prior",
    "decode",
    "decode_structured",
    "fit_prior",
    "gmtl_decode",
    "independent_argmax",
    "joint_log_posterior",
    "main_task_accuracy",
    "select_alpha",
    "select_smoothing_cv",
]
