"""MT-CRL's β-VAE ablation (Table 3, "β-VAE instead of L_decor"; Higgins et al. 2017, Eq. 4)."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from causalmtl.data import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods.batch import Batch
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.methods.mtcrl.regularizers import balance_entropy, beta_vae_terms, gaussian_kl
from causalmtl.nn.base import seeded
from causalmtl.nn.mtcrl import MTCRLNet
from causalmtl.train import Trainer

TASKS = (Task("a", "classification", 3), Task("b", "classification", 2))
SHAPE = (1, 3, 4)  # one input example


def encoder(d):
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, d))


def make_net(seed=0, vae=True, dtype=torch.float64):
    with seeded(seed):
        net = MTCRLNet(encoder, TASKS, n_modules=4, width=16, vae_input_shape=SHAPE if vae else None,
                       vae_hidden=10)
    return net.to(dtype)


def make_batch(seed, env, n=24, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g, dtype=dtype)
    y = torch.stack([torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)], 1)
    return Batch(x, y.to(dtype), torch.full((n,), env))


# --- the KL and the loss terms ---------------------------------------------------------------
def test_closed_form_kl_equals_torch_distributions_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    ours = gaussian_kl(mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    ref = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(dim=(1, 2))
    assert ours.shape == (5,)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    # Monte-Carlo: E_q[log q(z) − log p(z)], 50k draws; tolerance = 5 standard errors
    z = mu + torch.exp(0.5 * logvar) * torch.randn(
        (50_000, *mu.shape), generator=g, dtype=torch.float64)
    lr = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(dim=(2, 3))  # (S, 5)
    se = lr.std(dim=0) / math.sqrt(lr.shape[0])
    assert ((lr.mean(dim=0) - ours).abs() < 5 * se).all()
    # KL is zero exactly at the prior and positive elsewhere
    assert float(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0
    assert (ours > 0).all()


def test_kl_and_terms_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="mu and logvar"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x_hat"):
        beta_vae_terms(torch.zeros(2, 6), torch.zeros(2, 5), torch.zeros(2, 3), torch.zeros(2, 3))


def test_objective_equals_hand_written_formula():
    """Σ_t R_t + λ_sps‖A‖₁ − λ_bal H + λ_vae·mean_b(½‖x − x̂‖² + β·KL), every piece by hand."""
    net = make_net()
    b = make_batch(1, 0)
    hp = dict(lambda_sps=0.03, lambda_bal=0.2, beta=3.0, lambda_vae=0.7, girm="none")
    method = MTCRL(net, disentangle="beta_vae", **hp)
    with seeded(7):
        loss, logs = method.objective([b])
    with seeded(7), torch.no_grad():
        h = torch.stack([enc(b.x) for enc in net.encoders], 1)  # (B, K, m)
        stats = [F.linear(h[:, i], head.weight, head.bias) for i, head in enumerate(net.vae_heads)]
        mu = torch.stack([s[:, :4] for s in stats], 1)
        logvar = torch.stack([s[:, 4:] for s in stats], 1)
        z = mu + torch.exp(logvar / 2) * torch.randn(mu.shape, dtype=mu.dtype)
        a = torch.sigmoid(torch.stack(list(net.theta_rows)))
        risk = 0.0
        for t in range(2):
            mixed = torch.cat([a[t, i] * z[:, i] for i in range(4)], 1)  # routing="concat"
            logits = net.heads[t](mixed)
            risk = risk + F.cross_entropy(logits, b.y[:, t].long())
        x_hat = net.decoder(z.reshape(len(b), -1))
        recon = (0.5 * (b.x.reshape(len(b), -1) - x_hat).pow(2).sum(1)).mean()
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(dim=(1, 2)).mean()
        rest = 0.03 * a.abs().sum() - 0.2 * balance_entropy(a) + 0.7 * (recon + 3.0 * kl)
    # the task risks are reduced in float32 by the shared loss code; the regularisers are exact
    assert float(logs["task_loss"]) == pytest.approx(float(risk), rel=1e-6)
    assert float(logs["loss"]) == pytest.approx(float(logs["task_loss"]) + float(rest), rel=1e-12)
    assert float(logs["loss"]) == pytest.approx(float(risk + rest), rel=1e-6)
    assert float(logs["vae_recon"]) == pytest.approx(float(recon), rel=1e-10)
    assert float(logs["vae_kl"]) == pytest.approx(float(kl), rel=1e-10)
    assert "decor" not in logs  # β-VAE replaces the decorrelation regulariser


def test_vae_term_is_computed_on_training_rows_only_with_girm():
    net = make_net()
    train, valid = make_batch(1, 0, n=20), make_batch(2, 1, n=30)
    method = MTCRL(net, disentangle="beta_vae", girm="var")
    with seeded(3):
        _, logs = method.objective([train, valid])
    with seeded(3), torch.no_grad():
        z, mu, logvar = net.encode_variational(torch.cat([train.x, valid.x]))  # same single draw
        recon, kl = beta_vae_terms(train.x, net.decode(z[:20]), mu[:20], logvar[:20])
    assert float(logs["vae_recon"]) == pytest.approx(float(recon), rel=1e-10)
    assert float(logs["vae_kl"]) == pytest.approx(float(kl), rel=1e-10)
    assert float(logs["girm"]) > 0


# --- sampling: eval deterministic, training seeded -------------------------------------------
def test_eval_uses_the_mean_and_training_draws_follow_the_seed():
    net = make_net()
    x = make_batch(1, 0).x
    net.eval()
    z1, z2 = net.encode(x), net.encode(x)
    _, mu, _ = net.encode_variational(x)
    assert torch.equal(z1, z2) and torch.equal(z1, mu)
    out1, out2 = net(x), net(x)
    assert all(torch.equal(a, b) for a, b in zip(out1, out2))
    net.train()
    with seeded(11):
        a = net.encode(x)
    with seeded(11):
        b = net.encode(x)
    with seeded(12):
        c = net.encode(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, mu)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(net.encode_variational(x, g1)[0], net.encode_variational(x, g2)[0])


def _splits(seed=0):
    rng = np.random.default_rng(seed)

    def part(n):
        x = rng.random(size=(n, *SHAPE)).astype(np.float32)
        y = np.stack([(x[:, 0, 0, 0] * 3).astype(int), (x[:, 0, 1, 1] > 0.5).astype(int)], 1)
        return MultiTaskDataset(x, y, TASKS)

    return DatasetSplits(part(64), part(32), part(16), name="toy")


def test_trainer_runs_are_reproducible_from_the_seed():
    def fit(seed):
        method = MTCRL(make_net(dtype=torch.float32), disentangle="beta_vae")
        Trainer(method, epochs=2, batch_size=32, protocol="mtcrl", seed=seed).fit(_splits())
        return torch.cat([p.detach().flatten() for p in method.model.parameters()])

    same_a, same_b, other = fit(0), fit(0), fit(1)
    assert torch.equal(same_a, same_b)
    assert not torch.equal(same_a, other)


def test_tiny_training_decreases_the_loss():
    net = make_net(dtype=torch.float32)
    method = MTCRL(net, disentangle="beta_vae", lambda_vae=0.1)
    method.configure_optimizer(torch.optim.Adam(net.parameters(), lr=1e-2))
    batches = [make_batch(1, 0, n=48, dtype=torch.float32), make_batch(2, 1, n=48, dtype=torch.float32)]

    def loss_now():
        with seeded(0):
            _, logs = method.objective(batches)
        return float(logs["loss"]), float(logs["beta_vae"])

    before, vae_before = loss_now()
    with seeded(1):
        for _ in range(80):
            method.update(batches)
    after, vae_after = loss_now()
    assert after < 0.8 * before
    assert vae_after < vae_before


# --- defaults untouched, switches, errors ----------------------------------------------------
def test_default_model_has_no_new_parameters_and_plain_parts_are_bit_identical():
    plain, vae = make_net(vae=False), make_net(vae=True)
    plain_sd, vae_sd = plain.state_dict(), vae.state_dict()
    assert not plain.is_variational and vae.is_variational
    assert not any(k.startswith(("vae_heads", "decoder")) for k in plain_sd)
    assert "vae_input_shape" not in plain.config()
    # the plain network is built first, so its parameters are the same draws with or without the VAE
    assert set(plain_sd) < set(vae_sd)
    assert all(torch.equal(v, vae_sd[k]) for k, v in plain_sd.items())
    # a reference built by hand in the pre-existing order: K encoders, T heads, θ = 0
    with seeded(0):
        encs = [encoder(4) for _ in range(4)]
        heads = [nn.Linear(16, 3), nn.Linear(16, 2)]  # routing="concat": heads see all d = 16
    ref = [p for m in encs + heads for p in m.parameters()]
    got = list(plain.encoders.parameters()) + list(plain.heads.parameters())
    assert all(torch.equal(a.double(), b) for a, b in zip(ref, got))
    # plain encode is deterministic in training mode (no sampling without the VAE parts)
    x = make_batch(1, 0).x
    plain.train()
    assert torch.equal(plain.encode(x), plain.encode(x))


def test_default_method_is_decor_and_old_switch_still_works():
    net = make_net(vae=False)
    batches = [make_batch(1, 0), make_batch(2, 1)]
    default = MTCRL(net)
    assert default.hparams["disentangle"] == "decor" and default.disentanglement == "decor"
    loss_default, logs_default = default.objective(batches)
    loss_decor, _ = MTCRL(net, disentangle="decor").objective(batches)
    assert torch.equal(loss_default, loss_decor)
    assert "decor" in logs_default and "beta_vae" not in logs_default
    old_off = MTCRL(net, decorrelation=False)
    assert old_off.disentanglement == "none"
    loss_old, logs_old = old_off.objective(batches)
    loss_none, _ = MTCRL(net, disentangle="none").objective(batches)
    assert torch.equal(loss_old, loss_none)
    assert "decor" not in logs_old
    assert float((loss_default - loss_none).detach()) == pytest.approx(1e-4 * float(logs_default["decor"]), rel=1e-4)


def test_bad_settings_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="disentangle must be one of"):
        MTCRL(make_net(vae=False), disentangle="vae")
    with pytest.raises(ValueError, match="vae_input_shape"):
        MTCRL(make_net(vae=False), disentangle="beta_vae")
    with pytest.raises(ValueError, match="disentangle='decor'"):
        MTCRL(make_net(vae=True))
    with pytest.raises(ValueError, match="beta"):
        MTCRL(make_net(), disentangle="beta_vae", beta=-1.0)
    with pytest.raises(ValueError, match="lambda_vae"):
        MTCRL(make_net(), disentangle="beta_vae", lambda_vae=float("nan"))
    with pytest.raises(ValueError, match="vae_input_shape"):
        MTCRLNet(encoder, TASKS, n_modules=4, width=16, vae_input_shape=(1, 0))
    with pytest.raises(ValueError, match="vae_hidden"):
        MTCRLNet(encoder, TASKS, n_modules=4, width=16, vae_input_shape=12, vae_hidden=0)


def test_dict_inputs_are_rejected_with_a_clear_message():
    class DictEncoder(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.lin = nn.Linear(12, d)

        def forward(self, x):
            return self.lin(x["pixels"])

    with seeded(0):
        net = MTCRLNet(DictEncoder, TASKS, n_modules=4, width=16, vae_input_shape=12)
    b = make_batch(1, 0, dtype=torch.float32)
    batch = Batch({"pixels": b.x.reshape(len(b), -1)}, b.y, b.env)
    method = MTCRL(net, disentangle="beta_vae", girm="none")
    with pytest.raises(ValueError, match="batch.x must be a tensor"):
        method.objective([batch])


# --- the mtcrl-digits experiment -------------------------------------------------------------
def test_mtcrl_digits_plans_the_beta_vae_ablation():
    from causalmtl.experiments.builtin.mtcrl_digits import ABLATIONS, MtcrlDigitsConfig, plan

    cfg = MtcrlDigitsConfig(methods=["mtcrl-var"], k_values=[])
    assert "beta_vae" in cfg.ablations
    specs = {s.run_key: s for s in plan(cfg)}
    spec = specs["ablation/beta_vae"]
    assert spec.method == "mtcrl-var"
    assert spec.params["hparams"]["disentangle"] == "beta_vae"
    assert ABLATIONS["beta_vae"]["paper"] == (0.896, 0.024)
    assert all(a["fixed"] is not None for a in ABLATIONS.values())


def test_experiment_builds_a_variational_model_for_the_ablation_only():
    from causalmtl.experiments.common import ModelConfig, build_model

    x = np.zeros((4, *SHAPE), dtype=np.float32)
    data = MultiTaskDataset(x, np.zeros((4, 2), dtype=int), TASKS)
    mcfg = ModelConfig(hidden=[8, 4], n_modules=4, width=16)
    plain = build_model("mtcrl", data, mcfg, 0)
    vae = build_model("mtcrl", data, mcfg, 0, beta_vae=True)
    assert not plain.is_variational
    assert vae.vae_input_shape == SHAPE
    assert vae.decode(torch.zeros(2, 4, 4)).shape == (2, *SHAPE)
