"""ERM / vanilla multi-task learning: the (weighted) sum of the task losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor

from .._hparams import HParam
from .base import EnvProtocol, Method
from .batch import Batch

__all__ = ["ERM"]


class ERM(Method):
    """Empirical risk minimisation of the weighted sum of task risks (vanilla MTL).

    The loss of a step is ``L = Σ_t w_t R_t`` with ``R_t`` the masked mean loss of task
    ``t`` over the pooled batch (Vapnik 1998; the "MTL" baseline of MT-CRL Table 2 and the
    DMTL training objective of GMTL §3). Environments are ignored ("pooled" protocol).
    """

    env_protocol: ClassVar[EnvProtocol] = "pooled"
    HPARAMS: ClassVar[dict[str, HParam]] = {}
    citation: ClassVar[str] = "Vapnik, The Nature of Statistical Learning Theory (1998); vanilla MTL"

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        risks, _, _ = self.env_risks(batches)
        risks = risks[0]
        loss = self.task_loss(risks)
        logs = {f"loss/{t.name}": risks[i].detach() for i, t in enumerate(self.model.tasks)}
        logs["loss"] = loss.detach()
        return loss, logs
