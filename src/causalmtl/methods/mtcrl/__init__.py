"""MT-CRL (Hu et al., NeurIPS 2022) as a training method: the objective (:mod:`.method`), its
regularisers, Eqs. (2), (3), (7)–(9) (:mod:`.regularizers`), and the diagnostics of §5
(:mod:`.diagnostics`). The model, :class:`causalmtl.nn.MTCRLNet`, lives in ``nn``."""

from .method import DISENTANGLE_FORMS, GIRM_FORMS, MTCRL

__all__ = ["MTCRL", "GIRM_FORMS", "DISENTANGLE_FORMS"]
