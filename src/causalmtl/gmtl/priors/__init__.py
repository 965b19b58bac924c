"""Joint label priors p(y_1, …, y_T) (Makino et al. 2022, §3.2) — the bottom layer of gmtl.

* :mod:`.prior` — the :class:`Prior` protocol the decoder and the EM read, the dense
  :class:`JointPrior` (``Π_t C_t`` cells), :func:`as_prior` / :func:`as_any_prior` and
  :func:`gmtl_taskonomy_prior`;
* :mod:`.tree` — :class:`TreePrior`, a Chow–Liu tree (or forest) whose size grows linearly in
  the number of tasks (docs/many_tasks.md).

This package imports nothing else of :mod:`causalmtl.gmtl`.

Its public names are imported from :mod:`causalmtl.gmtl` (this ``__init__`` re-exports
nothing, so no function shadows a module of the same name, e.g. ``decode``, ``adapt``).
"""
