"""GMTL inference (Makino, Geras & Cho, NeurIPS 2022): joint prior, joint decoding, α.

>>> import numpy as np
>>> from causalmtl.gmtl import JointPrior, decode
>>> prior = JointPrior.fit(np.array([[0, 0], [1, 1], [1, 1]]), n_classes=(2, 2))
>>> decode([np.log([[0.5, 0.5]]), np.log([[0.3, 0.7]])], prior, alpha=1.0)
array([[0, 1]])
"""

from .decode import decode, independent_argmax, joint_log_posterior
from .prior import JointPrior, as_prior
from .select import AlphaSelection, main_task_accuracy, select_alpha
from .structured import DecodeInfo, decode_structured, fit_prior
from .tree import TreePrior

__all__ = [
    "AlphaSelection",
    "DecodeInfo",
    "JointPrior",
    "TreePrior",
    "as_prior",
    "decode",
    "decode_structured",
    "fit_prior",
    "independent_argmax",
    "joint_log_posterior",
    "main_task_accuracy",
    "select_alpha",
]
