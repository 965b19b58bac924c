"""Deprecated: moved to :mod:`causalmtl.shift.unknown_q` (evaluation under shift belongs to
``shift``, which may use ``gmtl``; ``gmtl`` does not import ``shift``). This alias module is
removed in the next release; it is the one known ``gmtl → shift`` import
(``tests/test_import_graph.py``).
"""

from __future__ import annotations

import warnings

from ..shift.unknown_q import (  # noqa: F401
    correlation_shift,
    evaluate_unknown_q,
    importance_resample,
    oracle_gain_recovered,
    q_error,
    shifted_accuracy,
    strongest_pairs,
)

warnings.warn(
    "causalmtl.gmtl.evaluate_q moved to causalmtl.shift.unknown_q; the old path is removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "q_error",
    "importance_resample",
    "shifted_accuracy",
    "oracle_gain_recovered",
    "correlation_shift",
    "strongest_pairs",
    "evaluate_unknown_q",
]
