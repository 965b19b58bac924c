"""MT-CRL: multi-task causal representation learning (Hu et al., NeurIPS 2022, §3 and §4).

The training objective (Eq. 4 and 7)

    L = Σ_t w_t R_t(Φ, A_t, f_t)                          (training environment only)
      + λ_decor Σ_{i<j} ‖ρ(Φ_i(X), Φ_j(X))‖_F²             (Eq. 2; disentangle="decor")
        or λ_vae (E_q[−log p(x|z)] + β KL(q(z|x) ‖ N(0,I)))  (β-VAE; disentangle="beta_vae")
      + λ_sps ‖A‖₁ − λ_bal Entropy(Σ_t A_t· / Σ A)         (Eq. 3)
      + λ · L_G-IRM(Φ, A | f)                              (Eq. 8 "norm" or Eq. 9 "var")

on an :class:`~causalmtl.nn.mtcrl.MTCRLNet`. The environment protocol of §4 is
``"per_env_train_loss"``: ``update`` receives one batch per environment (the first is the
training split, e.g. train and valid as two environments); the task loss uses the first only,
the invariance penalty all of them. Baselines declare ``"pooled"`` and the trainer feeds them
train + valid together, so comparisons are fair by construction.

One step costs one encoder pass over all environment batches (concatenated), the predictors
once on the training rows (task loss) and once, with detached parameters, on all rows (the
risks ``R_t^e`` whose graph gradients G-IRM penalises), ONE ``autograd.grad`` call with
``create_graph=True`` for every task's and environment's graph gradient, and one backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from ..._hparams import HParam, log_uniform
from ..._parallel import global_gradient, global_sum
from ...nn.base import ModelOutput, MultiTaskModel, grouped_risks, row_losses
from ...nn.mtcrl import MTCRLNet
from ..base import EnvProtocol, Method, cat_batches
from ..batch import Batch
from .regularizers import (
    balance_entropy,
    beta_vae_terms,
    decorrelation_penalty,
    girm_norm,
    girm_variance,
    graph_risk_gradients,
)

__all__ = ["MTCRL", "GIRM_FORMS", "DISENTANGLE_FORMS"]

GIRM_FORMS: tuple[str, ...] = ("var", "norm", "none")
DISENTANGLE_FORMS: tuple[str, ...] = ("decor", "beta_vae", "none")


class MTCRL(Method):
    """MT-CRL with G-IRM (Hu, Zhao, Yi, Yao, Hong, Sun & Chi, NeurIPS 2022, Eq. 2, 3, 4, 7–9).

    Parameters
    ----------
    model : :class:`~causalmtl.nn.mtcrl.MTCRLNet`
    task_weights : optional ``w_t >= 0`` of the task risks (default 1)
    **hparams : see :attr:`HPARAMS`. The paper tunes the λ by grid search and does not report
        the values; the defaults here are starting points, not the paper's.

    Notes
    -----
    Ablations (Table 3): ``disentangle`` picks the disentanglement regulariser — ``"decor"``
    (Eq. 2, the default), ``"beta_vae"`` ("β-VAE instead of L_decor": the β-VAE objective of
    Higgins et al. 2017, Eq. 4, on variational modules; the model must be built with
    ``MTCRLNet(..., vae_input_shape=...)``) or ``"none"``. ``decorrelation=False`` is kept as
    the older spelling of ``disentangle="none"`` (it is read only when ``disentangle="decor"``).
    ``sparsity`` and ``balance`` switch each graph term off without touching its λ;
    ``girm="none"`` is "MT-CRL w/o L_G-IRM" (then one environment suffices). The K sweep
    (Table 11) is the model's ``n_modules``.

    Errors: a negative or non-finite λ, an unknown ``girm`` form, fewer than two environments
    with G-IRM on, or an environment batch that has no label for some task (its ``R_t^e`` and
    so its graph gradient would be undefined) raise ``ValueError``. The last check reads one
    boolean from the device per step; ``check_labels=False`` skips it.
    """

    env_protocol: ClassVar[EnvProtocol] = "per_env_train_loss"
    model: MTCRLNet  # checked in __init__
    min_environments: ClassVar[int] = 2
    citation: ClassVar[str] = (
        "Hu, Zhao, Yi, Yao, Hong, Sun & Chi. Improving Multi-Task Generalization via Regularizing "
        "Spurious Correlation. NeurIPS 2022"
    )
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "lambda_decor": HParam(1e-4, log_uniform(1e-5, 1e-3), "λ_decor of the decorrelation regulariser, Eq. (2) (a sum of "
                                 "C(K,2)·(d/K)² squared correlations; see docs/mtcrl.md)"),
        "lambda_sps": HParam(0.01, log_uniform(1e-4, 1e-1), "λ_sps of the graph sparsity term ‖A‖₁, Eq. (3)"),
        "lambda_bal": HParam(0.1, log_uniform(1e-3, 1.0), "λ_bal of the graph balance (entropy) term, Eq. (3)"),
        "lambda_girm": HParam(1.0, log_uniform(1e-2, 1e2), "λ of the G-IRM invariance penalty, Eq. (7)"),
        "girm": HParam("var", None, "G-IRM form: 'var' (Eq. 9), 'norm' (Eq. 8) or 'none' (no invariance)"),
        "disentangle": HParam("decor", None, "disentanglement regulariser: 'decor' (Eq. 2), 'beta_vae' (β-VAE, "
                                 "Higgins et al. 2017 Eq. 4; Table 3) or 'none'"),
        "beta": HParam(4.0, None, "β of the β-VAE KL term (Higgins et al. 2017; used with disentangle='beta_vae')"),
        "lambda_vae": HParam(0.01, None, "weight of the whole β-VAE objective (reconstruction + β·KL, per-example "
                             "sums averaged over the batch) against the task risks"),
        "decorrelation": HParam(True, None, "ablation switch: use the decorrelation regulariser "
                                "(False = disentangle='none'; read only when disentangle='decor')"),
        "sparsity": HParam(True, None, "ablation switch: use the sparsity term λ_sps ‖A‖₁"),
        "balance": HParam(True, None, "ablation switch: use the balance term −λ_bal Entropy(...)"),
        "decor_eps": HParam(1e-8, None, "added to the variances inside the Pearson correlation, Eq. (1)"),
        "check_labels": HParam(True, None, "raise when an environment batch lacks labels for a task"),
        "graph_lr_mult": HParam(100.0, log_uniform(10.0, 300.0), "learning-rate multiplier of the graph logits θ (A = sigmoid(θ)); Adam moves "
                               "each θ by about lr per step, so at lr 1e-3 A cannot leave [0.2, 0.8] in "
                               "1,500 steps; 100 lets A reach 0 or 1 (docs/mtcrl.md, 'The graph learns')"),
    }

    def __init__(
        self,
        model: MultiTaskModel,
        task_weights: Sequence[float] | None = None,
        **hparams: Any,
    ) -> None:
        super().__init__(model, task_weights, **hparams)
        if not isinstance(model, MTCRLNet):
            raise ValueError(
                "MTCRL needs an MTCRLNet model (K modules and a task-to-module graph), got "
                f"{type(model).__name__}"
            )
        for name in ("lambda_decor", "lambda_sps", "lambda_bal", "lambda_girm", "decor_eps", "beta", "lambda_vae"):
            self._nonneg(name)
        if self._nonneg("graph_lr_mult") <= 0:
            raise ValueError(f"graph_lr_mult must be > 0, got {self.hparams['graph_lr_mult']!r}")
        if self.hparams["girm"] not in GIRM_FORMS:
            raise ValueError(f"girm must be one of {GIRM_FORMS}, got {self.hparams['girm']!r}")
        if self.hparams["disentangle"] not in DISENTANGLE_FORMS:
            raise ValueError(
                f"disentangle must be one of {DISENTANGLE_FORMS}, got {self.hparams['disentangle']!r}"
            )
        for name in ("decorrelation", "sparsity", "balance", "check_labels"):
            if not isinstance(self.hparams[name], bool):
                raise ValueError(f"{name} must be True or False, got {self.hparams[name]!r}")
        if self.disentanglement == "beta_vae" and not model.is_variational:
            raise ValueError(
                "disentangle='beta_vae' needs a model with variational modules and a decoder: build "
                "MTCRLNet(..., vae_input_shape=<shape of one input example>)"
            )
        if self.disentanglement != "beta_vae" and model.is_variational:
            raise ValueError(
                f"the model has β-VAE parts (vae_input_shape={model.vae_input_shape}) but "
                f"disentangle={self.hparams['disentangle']!r}: its sampled modules would go "
                "unregularised; use disentangle='beta_vae' or a model without vae_input_shape"
            )

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The model's groups, with the graph logits θ in their own group at ``lr · graph_lr_mult``."""
        groups = super().param_groups(lr)
        mult = float(self.hparams["graph_lr_mult"])
        if mult == 1.0:
            return groups
        theta = {id(p) for p in self.model.theta_rows}
        out = [{**g, "params": [p for p in g["params"] if id(p) not in theta]} for g in groups]
        out = [g for g in out if g["params"]]
        out.append({"params": list(self.model.theta_rows), "lr": lr * mult})
        return out

    @property
    def disentanglement(self) -> str:
        """The regulariser in use: ``"decor"``, ``"beta_vae"`` or ``"none"``.

        ``disentangle="decor"`` with ``decorrelation=False`` (the older ablation switch) is
        ``"none"``.
        """
        form = self.hparams["disentangle"]
        if form == "decor" and not self.hparams["decorrelation"]:
            return "none"
        return str(form)

    @property
    def uses_girm(self) -> bool:
        """Whether the invariance penalty is on (form not ``"none"`` and λ > 0)."""
        return self.hparams["girm"] != "none" and float(self.hparams["lambda_girm"]) > 0

    def check_batches(self, batches: Sequence[Batch]) -> None:
        """Like :meth:`Method.check_batches`; two or more environments only when G-IRM is on."""
        if len(batches) == 0:
            raise ValueError("MTCRL.update got no batches")
        if self.uses_girm and len(batches) < 2:
            raise ValueError(
                f"G-IRM (girm={self.hparams['girm']!r}) needs at least 2 environments (one batch "
                f"each, e.g. train and valid), got {len(batches)}"
            )
        for e, b in enumerate(batches):
            if len(b) == 0:
                raise ValueError(f"environment {e} has no examples in this step's batches; MTCRL needs every environment")

    def _check_env_labels(self, observed: Tensor, which: Tensor, n_env: int) -> None:
        counts = observed.to(torch.int64).new_zeros(n_env, observed.shape[1])
        counts = global_sum(counts.index_add(0, which, observed.to(torch.int64)))  # data-parallel
        if bool((counts == 0).any()):
            e, t = (int(v) for v in (counts == 0).nonzero()[0])
            raise ValueError(
                f"environment {e}'s batch has no label for task {t} ({self.model.tasks[t].name!r}); "
                "G-IRM needs the risk R_t^e of every task in every environment — use larger "
                "batches, drop the task, or pass check_labels=False to accept R_t^e = 0"
            )

    def objective(self, batches: Sequence[Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        """The MT-CRL loss of one step (see the module docstring) and its parts to log."""
        self.check_batches(batches)
        model: MTCRLNet = self.model
        hp = self.hparams
        use_girm = self.uses_girm
        n_env = len(batches)
        n_train = len(batches[0])
        if use_girm:
            batch, which = cat_batches(batches)
        else:
            batch, which = batches[0], None
        logs: dict[str, Tensor] = {}
        use_vae = self.disentanglement == "beta_vae"
        if use_vae and not isinstance(batch.x, Tensor):
            raise ValueError(
                f"disentangle='beta_vae' reconstructs the input, so batch.x must be a tensor; got "
                f"{type(batch.x).__name__} (dict inputs such as MovieLens are not supported)"
            )
        with self.autocast():
            if use_vae:
                z, mu, logvar = model.encode_variational(batch.x)  # z drawn in training mode
            else:
                z = model.encode(batch.x)  # (B, K, m)
            graph = model.graph  # (T, K)
            if use_girm:
                # one copy of A per environment, so one autograd.grad call gives every ∇_{A_t} R_t^e
                graph_env = graph.unsqueeze(0).repeat(n_env, 1, 1)  # (E, T, K)
                mixed = model.mix(z, graph_env[which])
            else:
                mixed = model.mix(z, graph)
            y_train = batch.y[:n_train]
            maps_train = {t: m[:n_train] for t, m in batch.maps.items()}
            out_train = model.predict_from_mixed(mixed[:n_train])
            risks = model.task_losses(ModelOutput(outputs=out_train), y_train, maps=maps_train)  # (T,)
            loss = self.task_loss(risks)
            logs["task_loss"] = loss.detach()
            for t, task in enumerate(model.tasks):
                logs[f"loss/{task.name}"] = risks[t].detach()

            if use_vae and hp["lambda_vae"] > 0:
                # β-VAE (Higgins et al. 2017, Eq. 4) on the training rows, in float32 under autocast
                x_train = cast(Tensor, batch.x)[:n_train]  # a Tensor: checked above when use_vae
                x_hat = _wide(model.decode(z[:n_train]))
                recon, kl = beta_vae_terms(_wide(x_train), x_hat, _wide(mu[:n_train]), _wide(logvar[:n_train]))
                vae = recon + float(hp["beta"]) * kl
                loss = loss + float(hp["lambda_vae"]) * vae
                logs["vae_recon"] = recon.detach()
                logs["vae_kl"] = kl.detach()
                logs["beta_vae"] = vae.detach()
            if self.disentanglement == "decor" and hp["lambda_decor"] > 0:
                # correlations in float32 even under bfloat16 autocast
                decor = decorrelation_penalty(z[:n_train].float(), eps=float(hp["decor_eps"]))
                loss = loss + float(hp["lambda_decor"]) * decor
                logs["decor"] = decor.detach()
            if hp["sparsity"] and hp["lambda_sps"] > 0:
                l1 = graph.abs().sum()
                loss = loss + float(hp["lambda_sps"]) * l1
                logs["graph_l1"] = l1.detach()
            if hp["balance"] and hp["lambda_bal"] > 0:
                ent = balance_entropy(graph)
                loss = loss - float(hp["lambda_bal"]) * ent
                logs["graph_entropy"] = ent.detach()

            if use_girm:
                observed = ~torch.isnan(batch.y)
                if hp["check_labels"]:
                    self._check_env_labels(observed, cast(Tensor, which), n_env)  # set by cat_batches when use_girm
                # f_t held fixed: the predictors run on detached parameters (Eq. 7-9)
                out_fixed = model.predict_from_mixed(mixed, detach_heads=True)
                env_risks = grouped_risks(
                    row_losses(out_fixed, batch.y, model.tasks, batch.maps), observed, which, n_env
                )  # (E, T)
                grads = global_gradient(graph_risk_gradients(env_risks, graph_env))  # (E, T, K)
                penalty = girm_variance(grads) if hp["girm"] == "var" else girm_norm(grads)
                loss = loss + float(hp["lambda_girm"]) * penalty
                logs["girm"] = penalty.detach()
        logs["loss"] = loss.detach()
        return loss, logs


def _wide(t: Tensor) -> Tensor:
    """``t`` in float32 unless it already is float32 or float64 (autocast gives bfloat16)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()

