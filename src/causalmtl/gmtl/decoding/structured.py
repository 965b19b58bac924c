"""Choosing a prior for many tasks (:func:`fit_prior`) and the deprecated ``decode_structured``.

GMTL decoding with tree priors, split α and marginal mode (issue 10) is part of
:func:`causalmtl.gmtl.gmtl_decode` (objectives in :mod:`causalmtl.gmtl.decoding.objective`, kernels in
:mod:`causalmtl.gmtl.decoding.table_np`, :mod:`causalmtl.gmtl.decoding.table_torch`,
:mod:`causalmtl.gmtl.decoding.tree_infer`). :func:`decode_structured` and :func:`needs_structured`
remain for one release with their old return conventions and a ``DeprecationWarning``.

Which prior to build is chosen by :func:`fit_prior` (``structure="auto"``: the full table
while ``Π C_t <= max_table_size``, the Chow–Liu tree otherwise); the choice is logged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._validation import check_n_classes
from ..priors.prior import JointPrior
from ..priors.tree import MAX_TABLE_SIZE, TreePrior
from .decode import DecodeInfo, legacy_decode, needs_structured
from .objective import Alphas

logger = logging.getLogger(__name__)

#: Default largest ``Π C_t`` for which :func:`fit_prior` builds the full table.
AUTO_TABLE_SIZE = 2**16


# ---------------------------------------------------------------------------------------------
# prior choice
# ---------------------------------------------------------------------------------------------
def fit_prior(
    labels: Any,
    n_classes: Sequence[int],
    pseudocount: float = 1.0,
    *,
    structure: str = "auto",
    max_table_size: int = AUTO_TABLE_SIZE,
    **tree_kwargs: Any,
) -> JointPrior | TreePrior:
    """Fit the full joint prior when ``Π C_t`` is small, a Chow–Liu tree otherwise.

    Parameters
    ----------
    labels, n_classes, pseudocount : as :meth:`JointPrior.fit` / :meth:`TreePrior.fit`
    structure : ``"auto"`` (default), ``"full"`` or ``"tree"`` (force one)
    max_table_size : ``"auto"`` builds the full table while ``Π C_t <= max_table_size``
    **tree_kwargs : ``edges``, ``threshold``, ``missing`` for :meth:`TreePrior.fit`

    The choice is logged at INFO level; ``prior.structure`` (``"table"`` or ``"tree"``) tells which.
    """
    n_classes = check_n_classes(n_classes)
    if structure not in ("auto", "full", "tree"):
        raise ValueError(f"structure must be 'auto', 'full' or 'tree', got {structure!r}")
    size = int(np.prod(np.asarray(n_classes, dtype=object)))
    if structure == "auto":
        structure = "full" if size <= int(max_table_size) else "tree"
        logger.info(
            "fit_prior: Π C_t = %d %s max_table_size=%d -> %s prior",
            size, "<=" if structure == "full" else ">", int(max_table_size), structure,
        )
    if structure == "full":
        if tree_kwargs:
            raise ValueError(f"{sorted(tree_kwargs)} only apply to a tree prior (structure='tree')")
        if size > MAX_TABLE_SIZE:
            raise ValueError(
                f"structure='full' needs a table of Π C_t = {size} cells, more than {MAX_TABLE_SIZE}; "
                "use structure='tree'"
            )
        return JointPrior.fit(labels, n_classes, pseudocount=pseudocount)
    return TreePrior.fit(labels, n_classes, pseudocount=pseudocount, **tree_kwargs)


# ---------------------------------------------------------------------------------------------
# deprecated (one release)
# ---------------------------------------------------------------------------------------------
def decode_structured(
    log_probs: Any,
    prior: JointPrior | TreePrior | Any,
    alpha: Alphas | None = None,
    target_prior: JointPrior | TreePrior | Any | None = None,
    *,
    alpha_marginal: Alphas | None = None,
    alpha_dependence: Alphas | None = None,
    mode: str = "joint",
    method: str = "auto",
    normalized: bool = True,
    memory_mb: float = 256.0,
    return_marginals: bool = False,
    return_info: bool = False,
    backend: str = "auto",
) -> Any:
    """Deprecated alias of :func:`causalmtl.gmtl.gmtl_decode` with the old return convention.

    ``target_prior`` is ``q``, ``method`` is ``kernel``. Returns the labels (``(N, T)`` or
    ``(A, N, T)``), then the marginals and the :class:`DecodeInfo` when asked, in that order.
    Emits a ``DeprecationWarning``.
    """
    warnings.warn(
        "causalmtl.gmtl.decode_structured is deprecated and will be removed in the next release; "
        "use causalmtl.gmtl_decode(log_probs, prior, alpha=..., q=..., mode=..., kernel=..., "
        "marginals=...), which returns a Decoded",
        DeprecationWarning,
        stacklevel=2,
    )
    return legacy_decode(
        log_probs, prior, alpha, target_prior, normalized=normalized, memory_mb=memory_mb, mode=mode,
        method=method, alpha_marginal=alpha_marginal, alpha_dependence=alpha_dependence,
        return_marginals=return_marginals, return_info=return_info, backend=backend,
    )  # fmt: skip


__all__ = ["DecodeInfo", "decode_structured", "fit_prior", "needs_structured", "AUTO_TABLE_SIZE"]
