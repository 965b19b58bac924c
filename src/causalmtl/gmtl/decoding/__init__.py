"""The paper's decoding (Makino et al. 2022, Eq. 6 / S1): one objective, two kernels, α.

* :mod:`._scores` — input checks and conversion of the per-task log-probabilities;
* :mod:`.objective` — the objective ``Σ_t log p(y_t|x) − α_m·(marginal part)
  − α_d·(dependence part) + log q``, built once from a :class:`~causalmtl.gmtl.Prior`;
* :mod:`.decode` — :func:`gmtl_decode` → :class:`Decoded` (and the deprecated ``decode``);
* kernels: :mod:`.table_np`, :mod:`.table_torch` (full joint table) and :mod:`.tree_infer`
  (max-/sum-product on a tree prior);
* :mod:`.select` — the α heuristic (:func:`select_alpha`);
* :mod:`.sklearn` — :class:`GMTLClassifier`, :class:`GMTLClassifierCV` (imports scikit-learn,
  so it is not imported here: ``from causalmtl.gmtl.decoding.sklearn import …`` or
  ``causalmtl.GMTLClassifier``);
* :mod:`.structured` — the deprecated ``decode_structured`` / ``fit_prior``.

Imports :mod:`causalmtl.gmtl.priors` only.

Its public names are imported from :mod:`causalmtl.gmtl` (this ``__init__`` re-exports
nothing, so no function shadows a module of the same name, e.g. ``decode``, ``adapt``).
"""
