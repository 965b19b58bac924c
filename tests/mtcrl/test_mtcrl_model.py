"""MTCRLNet: modules, graph A = sigmoid(θ), routing (concat or Σ_i A_ti Φ_i(X)), predictors (MT-CRL §3.1)."""

import pytest
import torch
from torch import nn

from causalmtl.data import Task
from causalmtl.nn.base import seeded
from causalmtl.nn.mtcrl import MTCRLNet, module_width

TASKS = (Task("a", "classification", 3), Task("b", "regression"), Task("c", "classification", 2))


def make_net(k=4, width=16, **kw):
    with seeded(0):
        return MTCRLNet(lambda d: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, d)), TASKS,
                        n_modules=k, width=width, **kw)


@pytest.mark.parametrize("routing", ["concat", "sum"])
def test_forward_is_heads_on_graph_weighted_modules(routing):
    net = make_net(graph_init=0.3, routing=routing)
    with torch.no_grad():
        for row in net.theta_rows:
            row.normal_()
    x = torch.randn(5, 6)
    out = net.forward_full(x)
    a = torch.sigmoid(net.theta)
    torch.testing.assert_close(out.extra["graph"], a)
    zs = [enc(x) for enc in net.encoders]
    for t, task in enumerate(TASKS):
        if routing == "sum":
            h = sum(a[t, i] * zs[i] for i in range(net.n_modules))  # the literal Σ_i A_ti Φ_i(X)
        else:
            h = torch.cat([a[t, i] * zs[i] for i in range(net.n_modules)], dim=1)  # side by side
        logits = net.heads[t](h)
        want = torch.log_softmax(logits, 1) if task.kind == "classification" else logits[:, 0]
        torch.testing.assert_close(out.outputs[t], want)
        torch.testing.assert_close(out.extra["mixed"][:, t], h)
    assert out.extra["z"].shape == (5, 4, 4)
    assert out.extra["mixed"].shape == (5, 3, 16 if routing == "concat" else 4)
    assert out.features.shape == (5, 16)
    assert torch.allclose(out.outputs[0].exp().sum(1), torch.ones(5))
    assert [o.shape for o in net(x)] == [(5, 3), (5,), (5, 2)]


def test_concat_routing_equals_sum_of_zero_padded_modules():
    """concat is the §3.1 sum once each d/K-wide module is zero-padded into its own d/K block."""
    net = make_net(routing="concat")
    z = torch.randn(5, 4, 4)
    a = torch.rand(3, 4)
    padded = torch.zeros(5, 4, 16)
    for i in range(4):
        padded[:, i, 4 * i:4 * i + 4] = z[:, i]
    torch.testing.assert_close(net.mix(z, a), torch.einsum("tk,bkm->btm", a, padded))


def test_unknown_routing_is_refused():
    with pytest.raises(ValueError, match="routing must be 'concat' or 'sum'.*'max'"):
        make_net(routing="max")


def test_default_k_and_width_follow_appendix_e():
    net = MTCRLNet(lambda d: nn.Linear(3, d), TASKS[:1])
    assert (net.n_modules, net.module_dim, net.width) == (8, 16, 128)
    assert net.graph.shape == (1, 8)
    assert torch.all(net.graph == 0.5)


@pytest.mark.parametrize("routing", ["concat", "sum"])
def test_per_row_graph_mixing_matches_shared_graph(routing):
    net = MTCRLNet(lambda d: nn.Linear(3, d), TASKS[:2], n_modules=3, width=6, routing=routing)
    z = torch.randn(4, 3, 2)
    a = torch.rand(2, 3)
    torch.testing.assert_close(net.mix(z, a.expand(4, 2, 3)), net.mix(z, a))


def test_detached_heads_pass_gradient_to_modules_and_graph_only():
    net = make_net()
    out = net.forward_full(torch.randn(7, 6))
    fixed = net.predict_from_mixed(out.extra["mixed"], detach_heads=True)
    for a, b in zip(fixed, out.outputs):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in fixed).backward()
    assert all(p.grad is None for p in net.heads.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoders.parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.theta_rows)


def test_parameter_partition_puts_graph_row_with_its_task():
    net = make_net()
    own = net.task_parameters(1)
    assert any(p is net.theta_rows[1] for p in own)
    assert not any(p is net.theta_rows[0] for p in own)
    shared = {id(p) for p in net.shared_parameters()}
    assert shared == {id(p) for p in net.encoders.parameters()}


def test_ready_made_modules_and_custom_heads():
    mods = [nn.Linear(6, 2) for _ in range(3)]
    net = MTCRLNet(mods, TASKS, width=6, head=lambda t, d: nn.Sequential(nn.Linear(d, 5), nn.ReLU(),
                                                                        nn.Linear(5, TASKS[t].n_classes or 1)))
    assert net.n_modules == 3
    assert [o.shape for o in net(torch.randn(2, 6))] == [(2, 3), (2,), (2, 2)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_modules": 0}, "n_modules must be an int >= 1"),
        ({"n_modules": 5}, r"n_modules=5 does not divide width=16.*\[1, 2, 4, 8, 16\]"),
        ({"n_modules": 2.0}, "n_modules must be an int"),
    ],
)
def test_bad_k(kw, match):
    with pytest.raises(ValueError, match=match):
        MTCRLNet(lambda d: nn.Linear(6, d), TASKS, width=16, **kw)


def test_bad_inputs():
    assert module_width(128, 128) == 1
    with pytest.raises(ValueError, match="width must be"):
        module_width(0, 1)
    with pytest.raises(ValueError, match="sequence of K nn.Modules"):
        MTCRLNet(nn.Linear(3, 3), TASKS)
    with pytest.raises(ValueError, match="they must agree"):
        MTCRLNet([nn.Linear(3, 4)] * 2, TASKS, n_modules=4, width=16)
    with pytest.raises(ValueError, match="tasks must be"):
        MTCRLNet(lambda d: nn.Linear(3, d), [], width=16)
    net = MTCRLNet([nn.Linear(6, 3), nn.Linear(6, 3)], TASKS, width=4)  # modules give 3, not 2
    with pytest.raises(ValueError, match=r"must output \(B, 2\)"):
        net(torch.randn(2, 6))


@pytest.mark.parametrize("k", [1, 2, 8, 128])
def test_k_sweep_keeps_total_width(k):
    # Table 11 / Appendix E: K modules of width 128 / K
    net = MTCRLNet(lambda d: nn.Linear(6, d), TASKS, n_modules=k)
    out = net.forward_full(torch.randn(3, 6))
    assert out.extra["z"].shape == (3, k, 128 // k)
    assert out.features.shape == (3, 128)
    assert net.graph.shape == (3, k)
