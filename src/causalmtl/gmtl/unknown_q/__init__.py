"""Decoding when the test prior q is unknown (docs/unknown_q.md): calibrate, estimate q, adapt.

* :mod:`.calibrate` — per-head calibrators fitted by NLL (temperature, BCTS, vector, cross-task);
* :mod:`.em` — EM / MLLS and BBSE over the joint label space (:func:`estimate_prior_em`);
* :mod:`.tree_em` — the same EM for a tree prior (the M-step refits the edge marginals);
* :mod:`.smoothing_cv` — the EM's smoothing chosen by held-out likelihood;
* :mod:`.score_model` — the Gaussian score model of the known-q likelihood;
* :mod:`.adapt` — the whole pipeline (:func:`adapt`, :func:`decode_adapted`).

Imports :mod:`causalmtl.gmtl.priors` and :mod:`causalmtl.gmtl.decoding`.

Its public names are imported from :mod:`causalmtl.gmtl` (this ``__init__`` re-exports
nothing, so no function shadows a module of the same name, e.g. ``decode``, ``adapt``).
"""
