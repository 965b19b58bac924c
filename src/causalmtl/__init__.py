"""causalmtl: multi-task learning that stays correct when the relationship between tasks shifts.

Implements GMTL (Makino, Geras & Cho, NeurIPS 2022) and MT-CRL (Hu et al., NeurIPS 2022),
their baselines, the target-shift evaluation protocol and the papers' experiments.

>>> import causalmtl as cm
>>> cm.__version__
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
