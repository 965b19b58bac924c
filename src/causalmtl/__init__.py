"""causalmtl: multi-task learning that stays correct when the relationship between tasks shifts.

Implements GMTL (Makino, Geras & Cho, NeurIPS 2022) and MT-CRL (Hu et al., NeurIPS 2022),
their baselines, the target-shift evaluation protocol and the papers' experiments.

The GMTL essentials (and the scikit-learn wrappers ``GMTLClassifier``, ``GMTLClassifierCV``)
are available at the top level; they and the sub-packages (``data``, ``shift``,
``nn``, ``methods``, ``train``, ``metrics``, ``experiments``, ``report``) are imported on
first use, so ``import causalmtl`` stays light.

>>> import causalmtl as cm
>>> cm.__version__
'0.1.0'
>>> prior = cm.JointPrior.from_probs([[0.4, 0.1], [0.1, 0.4]])
>>> cm.gmtl_decode([[[-0.1, -2.4]], [[-1.0, -0.46]]], prior, alpha=0.0, normalized=False).labels.tolist()
[[0, 1]]
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _moved

__version__ = "0.1.0"
_moved.install()  # old module paths of moved modules still import, with a DeprecationWarning

_SUBPACKAGES = ("data", "experiments", "gmtl", "methods", "metrics", "nn", "report", "shift", "train")

__all__ = [
    "Decoded", "GMTLClassifier", "GMTLClassifierCV", "JointPrior", "Prior", "TreePrior", "__version__", "adapt",
    "decode", "fit_prior", "gmtl_decode", "select_alpha", *_SUBPACKAGES,
]  # fmt: skip


_GMTL_NAMES = ("Decoded", "JointPrior", "Prior", "TreePrior", "adapt", "decode", "fit_prior", "gmtl_decode", "select_alpha")
_SKLEARN_NAMES = ("GMTLClassifier", "GMTLClassifierCV")  # scikit-learn is imported on first use


def __getattr__(name: str) -> Any:
    if name in _GMTL_NAMES:
        return getattr(importlib.import_module(".gmtl", __name__), name)
    if name in _SKLEARN_NAMES:
        return getattr(importlib.import_module(".gmtl.decoding.sklearn", __name__), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'causalmtl' has no attribute {name!r}")
