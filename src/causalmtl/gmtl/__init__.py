"""GMTL inference (Makino, Geras & Cho, NeurIPS 2022): joint prior, joint decoding, α.

>>> import numpy as np
>>> from causalmtl.gmtl import JointPrior, gmtl_decode
>>> prior = JointPrior.fit(np.array([[0, 0], [1, 1], [1, 1]]), n_classes=(2, 2))
>>> gmtl_decode([np.log([[0.5, 0.5]]), np.log([[0.3, 0.7]])], prior, alpha=1.0).labels
array([[0, 1]])
"""

from .adapt import AdaptResult, adapt, alpha_from_severity, decode_adapted, gmtl_log_likelihood
from .calibrate import (
    BCTSCalibrator,
    CrossTaskScaling,
    TemperatureScaling,
    VectorScaling,
    calibration_report,
    make_calibrator,
)
from .decode import (
    Decoded,
    DecodeInfo,
    decode,
    gmtl_decode,
    independent_argmax,
    joint_log_posterior,
)
from .em import EMResult, bbse, estimate_prior_em
from .prior import JointPrior, Prior, as_prior, gmtl_taskonomy_prior
from .score_model import GaussianScoreModel
from .select import AlphaSelection, main_task_accuracy, select_alpha
from .smoothing_cv import SmoothingCVResult, select_smoothing_cv
from .structured import decode_structured, fit_prior
from .tree import TreePrior
from .tree_em import estimate_tree_prior_em

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
