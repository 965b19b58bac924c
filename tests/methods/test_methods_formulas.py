"""Methods pinned to their papers' formulas on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from causalmtl.data.base import Task
from causalmtl.methods import (
    DANN,
    ERM,
    IRM,
    Batch,
    GradVac,
    PCGrad,
    VREx,
    dann_lambda,
    grad_reverse,
    gradvac_aggregate,
    irm_penalty,
    parameter_groups,
    pcgrad_aggregate,
    per_task_gradients,
    random_task_orders,
    vrex_penalty,
)
from causalmtl.nn import MLPEncoder, SharedTrunk, seeded

D = torch.float64


def _orders(t: int) -> torch.Tensor:
    return random_task_orders(t, torch.Generator().manual_seed(0))


# --- PCGrad -------------------------------------------------------------------------------
def test_pcgrad_conflicting_pair_by_hand():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=D)
    # g1·g2 = -1 < 0: g1' = g1 + 1/2 g2 = (0.5, 0.5); g2' = g2 + 1/1 g1 = (0, 1)
    out = pcgrad_aggregate(g, _orders(2))
    torch.testing.assert_close(out, torch.tensor([0.5, 1.5], dtype=D))


def test_pcgrad_no_conflict_is_the_plain_sum():
    g = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]], dtype=D)
    torch.testing.assert_close(pcgrad_aggregate(g, _orders(2)), g.sum(0))


def _pcgrad_naive(g: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    out = []
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in orders[i].tolist():
            dot = float(gi @ g[j])
            if dot < 0:
                gi = gi - dot / float(g[j] @ g[j]) * g[j]
        out.append(gi)
    return torch.stack(out).sum(0)


@pytest.mark.parametrize("t", [3, 5])
def test_pcgrad_vectorised_equals_algorithm_1_loop(t):
    g = torch.randn(t, 11, dtype=D, generator=torch.Generator().manual_seed(t))
    orders = _orders(t)
    torch.testing.assert_close(pcgrad_aggregate(g, orders), _pcgrad_naive(g, orders), rtol=0, atol=1e-12)


def test_random_task_orders_are_permutations_of_the_others():
    o = _orders(5)
    for i in range(5):
        assert sorted(o[i].tolist()) == [j for j in range(5) if j != i]


# --- GradVac ------------------------------------------------------------------------------
def test_gradvac_by_hand_reaches_the_target_cosine_and_updates_the_ema():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D)
    targets = torch.tensor([[0.0, 0.5], [0.0, 0.0]], dtype=D).unsqueeze(-1)
    out, new = gradvac_aggregate(g, _orders(2), targets, [2], beta=0.1)
    # φ12 = 0 < 0.5: g1' = g1 + |g1| (0.5·1 − 0·√0.75) / (|g2| √0.75) g2 = (1, 1/√3)
    g1 = torch.tensor([1.0, 1 / math.sqrt(3)], dtype=D)
    torch.testing.assert_close(out, g1 + g[1])
    assert float(g1 @ g[1] / g1.norm()) == pytest.approx(0.5)
    # φ21 = 0 is not below target 0: unchanged. EMA: 0.9·0.5 + 0.1·0 and 0.9·0 + 0.1·0
    torch.testing.assert_close(new[:, :, 0], torch.tensor([[0.0, 0.45], [0.0, 0.0]], dtype=D))


def test_gradvac_with_zero_targets_and_beta_zero_equals_pcgrad():
    g = torch.randn(4, 9, dtype=D, generator=torch.Generator().manual_seed(1))
    orders = _orders(4)
    out, new = gradvac_aggregate(g, orders, torch.zeros(4, 4, 1, dtype=D), [9], 0.0, eps=0.0)
    torch.testing.assert_close(out, pcgrad_aggregate(g, orders), rtol=0, atol=1e-10)
    assert (new == 0).all()


def _gradvac_naive(g, orders, targets, gid, k, beta):
    targets = targets.clone()
    out = []
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in orders[i].tolist():
            for grp in range(k):
                m = gid == grp
                a, b = gi[m], g[j][m]
                phi = float(a @ b / (a.norm() * b.norm()))
                tgt = float(targets[i, j, grp])
                if phi < tgt:
                    w = a.norm() * (tgt * math.sqrt(1 - phi ** 2) - phi * math.sqrt(1 - tgt ** 2)) / (
                        b.norm() * math.sqrt(1 - tgt ** 2))
                    gi[m] = a + w * b
                targets[i, j, grp] = (1 - beta) * tgt + beta * phi
        out.append(gi)
    return torch.stack(out).sum(0), targets


def test_gradvac_grouped_equals_naive_loop():
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(3, 12, dtype=D, generator=gen)
    gid = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)
    targets = (torch.rand(3, 3, 3, dtype=D, generator=gen) - 0.3)
    orders = _orders(3)
    out, new = gradvac_aggregate(g, orders, targets, [5, 4, 3], 0.2, eps=0.0)
    ref, ref_t = _gradvac_naive(g, orders, targets, gid, 3, 0.2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(new, ref_t, rtol=0, atol=1e-12)


def test_parameter_groups_whole_module_tensor():
    shapes = [("enc.0.weight", 6), ("enc.0.bias", 2), ("enc.2.weight", 4)]
    assert parameter_groups(shapes, "whole") == [12]
    assert parameter_groups(shapes, "module") == [8, 4]
    assert parameter_groups(shapes, "tensor") == [6, 2, 4]
    with pytest.raises(ValueError, match="group must be"):
        parameter_groups(shapes, "layer")


# --- per-task gradients and the method step -------------------------------------------------
TASKS = (Task("a", n_classes=2), Task("b", n_classes=3))


def _batch(n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    y = torch.stack([torch.randint(0, 2, (n,), generator=gen), torch.randint(0, 3, (n,), generator=gen)], 1).float()
    y[::4, 1] = float("nan")
    return Batch(x, y, torch.zeros(n, dtype=torch.long))


def test_per_task_gradients_batched_equals_loop_and_autograd():
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    b = _batch()
    risks = model.task_losses(model.forward_full(b.x), b.y)
    params = list(model.parameters())
    jb, used = per_task_gradients(risks, params, batched=True, retain_graph=True)
    jl, _ = per_task_gradients(risks, params, batched=False, retain_graph=True)
    assert used
    torch.testing.assert_close(jb, jl)
    g1 = torch.autograd.grad(risks[1], params, retain_graph=True)
    torch.testing.assert_close(jl[1], torch.cat([g.reshape(-1) for g in g1]))


@pytest.mark.parametrize("cls", [PCGrad, GradVac])
def test_gradient_method_writes_aggregated_shared_and_own_head_gradients(cls):
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    method = cls(model, task_weights=[1.0, 0.5])
    b = _batch()
    risks = model.task_losses(model.forward_full(b.x), b.y) * torch.tensor([1.0, 0.5])
    shared = model.shared_parameters()
    G = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(risks[t], shared, retain_graph=True)])
                     for t in range(2)])
    heads = [torch.autograd.grad(risks[t], model.task_parameters(t), retain_graph=True) for t in range(2)]
    # replay the method's aggregation on the same generator state
    ref = cls(model, task_weights=[1.0, 0.5])
    expected = ref.aggregate(G)
    method.backward([b])
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    torch.testing.assert_close(got, expected)
    for t in range(2):
        for p, g in zip(model.task_parameters(t), heads[t]):
            torch.testing.assert_close(p.grad, g)


def test_pcgrad_on_a_model_without_shared_parameters_is_erm():
    from causalmtl.nn import STL

    with seeded(0):
        model = STL(lambda: MLPEncoder(5, (8,)), TASKS)
    b = _batch()
    PCGrad(model).backward([b])
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ERM(model).backward([b])
    for g, p in zip(got, model.parameters()):
        torch.testing.assert_close(g, p.grad)


# --- IRM ------------------------------------------------------------------------------------
def test_irm_penalty_equals_hand_computed_head_gradients():
    """Regression heads f_t(z) = w_t·z + b_t with squared error: ∇_w R = 2 mean(r z), ∇_b R = 2 mean(r)."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 6, 3, dtype=D, generator=gen)  # (env, rows, dim)
    y = torch.randn(2, 6, 2, dtype=D, generator=gen)
    w = torch.randn(2, 3, dtype=D, generator=gen, requires_grad=True)
    bias = torch.randn(2, dtype=D, generator=gen, requires_grad=True)
    heads = [torch.nn.Parameter(w.detach()[t].clone()) for t in range(2)]
    biases = [torch.nn.Parameter(bias.detach()[t].clone()) for t in range(2)]
    risks = torch.stack([
        torch.stack([((z[e] @ heads[t] + biases[t] - y[e, :, t]) ** 2).mean() for t in range(2)])
        for e in range(2)
    ])
    pen = irm_penalty(risks, heads + biases)
    expected = 0.0
    for e in range(2):
        for t in range(2):
            r = (z[e] @ w[t] + bias[t] - y[e, :, t]).detach()
            gw = 2 * (r[:, None] * z[e]).mean(0)
            gb = 2 * r.mean()
            expected += float(gw @ gw + gb * gb)
    assert float(pen.detach()) == pytest.approx(expected, rel=1e-12)
    # differentiable (the penalty trains the representation)
    assert pen.requires_grad


def test_irm_penalty_is_zero_at_the_per_environment_optimum():
    z = torch.tensor([[1.0], [2.0]], dtype=D)
    head = torch.nn.Parameter(torch.tensor([2.0], dtype=D))
    y = z[:, 0] * 2.0
    risks = ((z @ head - y) ** 2).mean().reshape(1, 1).repeat(2, 1)
    assert float(irm_penalty(risks, [head]).detach()) == 0.0


def test_irm_annealing_schedule():
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    m = IRM(model, **{"lambda": 100.0, "anneal_steps": 3, "warmup": 1.0})
    weights = []
    for s in range(5):
        m.steps = s
        weights.append(m.penalty_weight())
    assert weights == [1.0, 1.0, 1.0, 100.0, 100.0]


# --- VREx -----------------------------------------------------------------------------------
def test_vrex_penalty_by_hand():
    risks = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    # per task: Var(1,3) = 1, Var(2,6) = 4
    assert float(vrex_penalty(risks)) == pytest.approx(5.0)
    # total risk: Var(3, 9) = 9; with weights (1, 0): Var(1, 3) = 1
    assert float(vrex_penalty(risks, per_task=False)) == pytest.approx(9.0)
    assert float(vrex_penalty(risks, torch.tensor([1.0, 0.0]), per_task=False)) == pytest.approx(1.0)
    assert float(vrex_penalty(torch.ones(3, 2))) == 0.0


def test_vrex_objective_is_mean_risk_plus_weighted_variance():
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    m = VREx(model, **{"lambda": 3.0})
    b0, b1 = _batch(8, 0), _batch(8, 1)
    loss, logs = m.objective([b0, b1])
    r0 = model.task_losses(model.forward_full(b0.x), b0.y)
    r1 = model.task_losses(model.forward_full(b1.x), b1.y)
    expected = ((r0 + r1) / 2).sum() + 3.0 * (((r0 - r1) / 2) ** 2).sum()
    torch.testing.assert_close(loss, expected)


# --- DANN -----------------------------------------------------------------------------------
def test_gradient_reversal_flips_and_scales():
    x = torch.randn(4, 3, requires_grad=True)
    c = torch.randn(4, 3)
    y = grad_reverse(x, 0.3)
    torch.testing.assert_close(y, x)
    (y * c).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * c)


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(0.5, gamma=10, lambda_max=2.0) == pytest.approx(2 * (2 / (1 + math.exp(-5)) - 1))
    vals = [dann_lambda(p / 10) for p in range(11)]
    assert vals == sorted(vals)


def test_dann_discriminator_learns_and_features_get_reversed_gradient():
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
        m = DANN(model, **{"lambda_max": 0.5, "weight": 1.0})
    b0, b1 = _batch(8, 0), _batch(8, 1)
    loss, logs = m.objective([b0, b1])
    # gradient of the discriminator loss w.r.t. the features through R_λ = −λ × the direct one
    out = model.forward_full(torch.cat([b0.x, b1.x]))
    z = out.features.detach().requires_grad_(True)
    which = torch.tensor([0] * 8 + [1] * 8)
    d_direct = torch.autograd.grad(torch.nn.functional.cross_entropy(m.discriminator(z), which), z)[0]
    z2 = out.features.detach().requires_grad_(True)
    d_rev = torch.autograd.grad(torch.nn.functional.cross_entropy(m.discriminator(grad_reverse(z2, 0.5)), which), z2)[0]
    torch.testing.assert_close(d_rev, -0.5 * d_direct)
    assert "disc_loss" in logs


# --- bad input ------------------------------------------------------------------------------
def test_method_errors():
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        PCGrad(model, betta=0.1)
    with pytest.raises(ValueError, match="beta must be in"):
        GradVac(model, beta=2.0)
    with pytest.raises(ValueError, match="task_weights"):
        ERM(model, task_weights=[1.0])
    with pytest.raises(ValueError, match="lambda must be"):
        IRM(model, **{"lambda": -1.0})
    with pytest.raises(ValueError, match="n_environments"):
        DANN(model, n_environments=1)
    m = IRM(model)
    m.configure_optimizer(torch.optim.Adam(m.parameters()))
    with pytest.raises(ValueError, match="at least 2 environments"):
        m.update([_batch()])
    empty = _batch().index(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="environment 1 has no examples"):
        m.update([_batch(), empty])
    e = ERM(model)
    e.configure_optimizer(torch.optim.Adam(e.parameters()))
    with pytest.raises(ValueError, match="expects one batch"):
        e.update([_batch(), _batch()])
