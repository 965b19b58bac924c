"""PCGrad and GradVac in Gram space equal the papers' algorithms run on the gradient vectors.

``pcgrad_aggregate`` and ``gradvac_aggregate`` never form the projected gradients; they carry
the coefficients of each one in the basis of the original task gradients. The references below
run Yu et al. 2020, Algorithm 1 and Wang et al. 2021, Algorithm 1 literally: task by task,
partner by partner, group by group, on the vectors themselves.
"""

from __future__ import annotations

import math

import pytest
import torch

from causalmtl.methods import (
    gradvac_aggregate,
    parameter_groups,
    pcgrad_aggregate,
    random_task_orders,
)

D = torch.float64
TASKS = [2, 3, 5, 8]
# a fake shared trunk: (name, numel) in flattening order -> 1 / 3 / 5 groups
NAMES = [("enc.0.weight", 12), ("enc.0.bias", 4), ("enc.2.weight", 8), ("gate.weight", 6), ("gate.bias", 3)]
P = sum(n for _, n in NAMES)


def _grads(t: int, conflicting: bool, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(t, P, dtype=D, generator=gen)
    if conflicting:  # task 1 opposes task 0; the others are random
        noise[1] = -noise[0] + 0.5 * noise[1]
        return noise
    # a common direction: every pair (and every group block) has a positive product, cos ≈ 0.996
    return torch.ones(1, P, dtype=D) + 0.06 * noise


def _orders(t: int, seed: int) -> torch.Tensor:
    return random_task_orders(t, torch.Generator().manual_seed(seed))


def _pcgrad_reference(g: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Yu et al. 2020, Algorithm 1 on the vectors."""
    total = torch.zeros(g.shape[1], dtype=g.dtype)
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in orders[i].tolist():
            dot = torch.dot(gi, g[j])
            if dot < 0:
                gi = gi - dot / torch.dot(g[j], g[j]) * g[j]
        total += gi
    return total


def _gradvac_reference(g, orders, targets, sizes, beta):
    """Wang et al. 2021, Algorithm 1 on the vectors, one group slice at a time."""
    targets = targets.clone()
    bounds = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    total = torch.zeros(g.shape[1], dtype=g.dtype)
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in orders[i].tolist():
            for k in range(len(sizes)):
                s = slice(bounds[k], bounds[k + 1])
                a, b = gi[s], g[j][s]
                phi = float(torch.dot(a, b) / (a.norm() * b.norm()))
                tgt = float(targets[i, j, k])
                if phi < tgt:
                    step = float(a.norm()) * (tgt * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - tgt**2)) / (
                        float(b.norm()) * math.sqrt(1 - tgt**2))
                    gi[s] = a + step * b
                targets[i, j, k] = (1 - beta) * tgt + beta * phi
        total += gi
    return total, targets


@pytest.mark.parametrize("conflicting", [True, False])
@pytest.mark.parametrize("t", TASKS)
def test_pcgrad_gram_space_equals_algorithm_1(t, conflicting):
    g = _grads(t, conflicting, seed=10 * t + conflicting)
    n_conflicts = int(((g @ g.T) < 0).sum())
    assert (n_conflicts > 0) == conflicting  # the case is what it claims to be
    for seed in range(3):
        orders = _orders(t, seed)
        ref = _pcgrad_reference(g, orders)
        torch.testing.assert_close(pcgrad_aggregate(g, orders, eps=0.0), ref, rtol=0, atol=1e-10)
    if not conflicting:
        torch.testing.assert_close(ref, g.sum(0), rtol=0, atol=1e-10)


def test_pcgrad_result_depends_on_the_order_and_follows_it():
    """With conflicts the order matters, so agreement above is not order-blind luck."""
    g = _grads(5, True, seed=3)
    a, b = _orders(5, 0), _orders(5, 1)
    assert not torch.allclose(_pcgrad_reference(g, a), _pcgrad_reference(g, b))
    torch.testing.assert_close(pcgrad_aggregate(g, b), _pcgrad_reference(g, b), rtol=0, atol=1e-10)


@pytest.mark.parametrize("group", ["whole", "module", "tensor"])
@pytest.mark.parametrize("conflicting", [True, False])
@pytest.mark.parametrize("t", TASKS)
def test_gradvac_gram_space_equals_algorithm_1(t, conflicting, group):
    sizes = parameter_groups(NAMES, group)
    assert len(sizes) == {"whole": 1, "module": 3, "tensor": 5}[group]
    g = _grads(t, conflicting, seed=10 * t + conflicting)
    gen = torch.Generator().manual_seed(t)
    # targets spread over [-0.5, 0.9]: with conflicting gradients most cosines fall below some
    # targets; with aligned ones (cos ≈ 1) only the near-1 targets are ever above
    targets = -0.5 + 1.4 * torch.rand(t, t, len(sizes), dtype=D, generator=gen)
    if not conflicting:
        targets[..., 0] = 0.999  # above the aligned cosines: forces a step there too
    orders = _orders(t, seed=t)
    out, new = gradvac_aggregate(g, orders, targets, sizes, beta=0.3, eps=0.0)
    ref, ref_t = _gradvac_reference(g, orders, targets, sizes, beta=0.3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(new, ref_t, rtol=0, atol=1e-10)
    assert not torch.allclose(ref, g.sum(0))  # some adjustment happened
