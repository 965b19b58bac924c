"""The MT-CRL method: objective = Eq. 4 + λ·G-IRM (Eq. 7-9), environment protocol of §4."""

import math

import pytest
import torch
from torch import nn

from causalmtl.data import Task
from causalmtl.methods.batch import Batch
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.methods.mtcrl.regularizers import decorrelation_penalty, girm_norm, girm_variance
from causalmtl.nn.base import masked_task_losses, seeded
from causalmtl.nn.mtcrl import MTCRLNet

TASKS = (Task("a", "classification", 3), Task("b", "regression"), Task("c", "classification", 2))


def make_net(seed=0, k=4, width=16):
    with seeded(seed):
        return MTCRLNet(
            lambda d: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, d)),
            TASKS, n_modules=k, width=width,
        ).double()


def make_batch(seed, env, n=24, missing=0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.stack([
        torch.randint(0, 3, (n,), generator=g).double(),
        torch.randn(n, generator=g, dtype=torch.float64),
        torch.randint(0, 2, (n,), generator=g).double(),
    ], 1)
    y[torch.rand(n, 3, generator=g) < missing] = float("nan")
    y[0] = torch.tensor([0.0, 0.1, 1.0], dtype=torch.float64)  # every task labelled at least once
    return Batch(x, y, torch.full((n,), env))


def envs(count=3):
    return [make_batch(10 + e, e, n=20 + 4 * e) for e in range(count)]


def naive_girm(net, batches, form):
    """Eq. (8)/(9) by a loop: one forward and one autograd.grad per task and environment."""
    rows = []
    for b in batches:
        row = []
        for t in range(len(TASKS)):
            a = net.graph
            mixed = net.mix(net.encode(b.x), a)
            out = net.predict_from_mixed(mixed, detach_heads=True)
            risk = masked_task_losses(out, b.y, TASKS)[t]
            (g,) = torch.autograd.grad(risk, a, create_graph=True)
            row.append(g[t])
        rows.append(torch.stack(row))
    grads = torch.stack(rows)
    return girm_variance(grads) if form == "var" else girm_norm(grads)


def grads_of(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("form", ["var", "norm"])
def test_girm_equals_naive_loop_and_never_reaches_predictors(form):
    batches = envs(3)
    net = make_net()
    off = dict(lambda_decor=0.0, lambda_sps=0.0, lambda_bal=0.0)
    with_pen = MTCRL(net, girm=form, lambda_girm=1.0, **off)
    without = MTCRL(net, girm="none", **off)
    loss_on, logs = with_pen.objective(batches)
    loss_off, _ = without.objective(batches)
    naive = naive_girm(net, batches, form)
    assert float(logs["girm"]) > 1e-6
    assert float(logs["girm"]) == pytest.approx(float(naive.detach()), abs=1e-6, rel=1e-6)

    # the penalty's gradient (loss with G-IRM minus loss without) equals the naive one on Φ and θ
    body = list(net.encoders.parameters()) + list(net.theta_rows)
    g_pen = [a - b for a, b in zip(grads_of(loss_on, body), grads_of(loss_off, body))]
    g_naive = grads_of(naive, body)
    for a, b in zip(g_pen, g_naive):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert sum(float(g.abs().sum()) for g in g_naive) > 1e-6

    # ... and is exactly zero on the predictors f_t
    heads = list(net.heads.parameters())
    loss_on, _ = with_pen.objective(batches)
    loss_off, _ = without.objective(batches)
    for a, b in zip(grads_of(loss_on, heads), grads_of(loss_off, heads)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    penalty_only = grads_of(naive_girm(net, batches, form), heads)
    assert all(float(g.abs().max()) == 0.0 for g in penalty_only)


def test_variance_is_zero_on_identical_environments_norm_is_not():
    b = make_batch(3, 0)
    twin = Batch(b.x.clone(), b.y.clone(), torch.ones_like(b.env))
    net = make_net()
    _, logs = MTCRL(net, girm="var").objective([b, twin, b])
    assert float(logs["girm"]) < 1e-20
    _, logs = MTCRL(net, girm="norm").objective([b, twin])
    assert float(logs["girm"]) > 1e-6


def test_objective_is_the_sum_of_its_parts():
    batches = envs(2)
    net = make_net()
    hp = dict(lambda_decor=0.3, lambda_sps=0.2, lambda_bal=0.7, lambda_girm=5.0)
    method = MTCRL(net, task_weights=[1.0, 2.0, 0.5], **hp)
    loss, logs = method.objective(batches)
    b0 = batches[0]
    out = net.forward_full(b0.x)
    risks = masked_task_losses(out.outputs, b0.y, TASKS)
    task = float((risks.detach() * torch.tensor([1.0, 2.0, 0.5])).sum())  # losses are float32 (nn.base)
    a = net.graph.detach()
    p = a.sum(0) / a.sum()
    entropy = -float((p * p.log()).sum())
    decor = float(decorrelation_penalty(out.extra["z"].detach()))
    want = task + 0.3 * decor + 0.2 * float(a.sum()) - 0.7 * entropy + 5.0 * float(logs["girm"])
    assert float(logs["task_loss"]) == pytest.approx(task, rel=1e-6)
    assert float(logs["decor"]) == pytest.approx(decor, rel=1e-6)
    assert float(logs["graph_entropy"]) == pytest.approx(entropy, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)
    assert float(logs["loss"]) == pytest.approx(want, rel=1e-6)


def test_task_loss_uses_the_training_environment_only():
    batches = envs(2)
    net = make_net()
    method = MTCRL(net)
    _, logs = method.objective(batches)
    other = make_batch(99, 1, n=20)
    _, logs2 = method.objective([batches[0], other])
    assert float(logs["task_loss"]) == float(logs2["task_loss"])
    assert float(logs["girm"]) != float(logs2["girm"])  # ... but the penalty sees env 1
    assert MTCRL.env_protocol == "per_env_train_loss"


def test_ablation_switches_remove_terms():
    batches = envs(2)
    net = make_net()
    _, full = MTCRL(net).objective(batches)
    assert {"decor", "graph_l1", "graph_entropy", "girm"} <= set(full)
    for switch, key in [("decorrelation", "decor"), ("sparsity", "graph_l1"), ("balance", "graph_entropy")]:
        loss, logs = MTCRL(net, **{switch: False}).objective(batches)
        assert key not in logs
        assert set(full) - set(logs) == {key}
    loss, logs = MTCRL(net, girm="none", decorrelation=False, sparsity=False, balance=False).objective(batches[:1])
    assert float(loss.detach()) == pytest.approx(float(full["task_loss"]), rel=1e-12)


def test_update_steps_the_optimizer():
    batches = envs(2)
    net = make_net()
    method = MTCRL(net)
    method.configure_optimizer(torch.optim.SGD(method.parameters(), lr=0.1))
    before = [p.detach().clone() for p in net.parameters()]
    logs = method.update(batches)
    assert all(v.dim() == 0 and not v.requires_grad for v in logs.values())
    assert all(math.isfinite(float(v)) for v in logs.values())
    changed = [not torch.equal(a, p) for a, p in zip(before, net.parameters())]
    assert all(changed)


def test_errors():
    net = make_net()
    with pytest.raises(ValueError, match="lambda_girm must be a finite number >= 0"):
        MTCRL(net, lambda_girm=-1.0)
    with pytest.raises(ValueError, match="lambda_decor"):
        MTCRL(net, lambda_decor=-0.1)
    with pytest.raises(ValueError, match="lambda_bal"):
        MTCRL(net, lambda_bal=float("inf"))
    with pytest.raises(ValueError, match="girm must be one of"):
        MTCRL(net, girm="variance")
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        MTCRL(net, lam=1.0)
    with pytest.raises(ValueError, match="sparsity must be True or False"):
        MTCRL(net, sparsity=1)
    with pytest.raises(ValueError, match="at least 2 environments"):
        MTCRL(net).objective(envs(1))
    MTCRL(net, girm="none").objective(envs(1))  # no invariance: one environment is fine
    batches = envs(2)
    batches[1].y[:, 2] = float("nan")
    with pytest.raises(ValueError, match=r"environment 1's batch has no label for task 2 \('c'\)"):
        MTCRL(net).objective(batches)
    MTCRL(net, check_labels=False).objective(batches)


def test_rejects_models_without_a_graph():
    from causalmtl.nn.base import ModelOutput, MultiTaskModel

    class Plain(MultiTaskModel):
        def __init__(self):
            super().__init__()
            self.tasks = TASKS
            self.feature_dim = 2
            self.heads = nn.ModuleList([nn.Linear(2, 3), nn.Linear(2, 1), nn.Linear(2, 2)])

        def forward_full(self, x):
            return ModelOutput([h(x) for h in self.heads])

    with pytest.raises(ValueError, match="needs an MTCRLNet"):
        MTCRL(Plain())


def test_registered_in_the_method_registry():
    from causalmtl.methods import METHODS

    assert METHODS["mtcrl"] is MTCRL
    assert MTCRL.default_hparams()["girm"] == "var"


def test_one_autograd_grad_call_for_all_tasks_and_environments(monkeypatch):
    calls = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(kwargs.get("create_graph"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    MTCRL(make_net(), girm="var").objective(envs(3))  # T = 3 tasks, E = 3 environments
    assert calls == [True]
