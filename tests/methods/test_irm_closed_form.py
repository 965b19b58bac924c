"""IRM's closed-form penalty for linear heads equals the autograd (double-backward) one (MT-CRL Eq. 6).

The spec: value AND gradient with respect to every parameter agree to 1e-10 in float64, on tiny
models with missing labels (one environment without any label of a task), classification with
2 and 3 classes and regression, 2 and 3 environments; models whose predictors are not linear
heads fall back to the autograd path.
"""

from __future__ import annotations

import pytest
import torch

from causalmtl.data.base import Task
from causalmtl.methods import IRM, Batch
from causalmtl.methods.irm import irm_penalty, irm_penalty_linear_heads, linear_heads
from causalmtl.nn import FPS, MLPEncoder, MMoE, SharedTrunk, seeded

TASKS = (Task("c2", n_classes=2), Task("c3", n_classes=3), Task("r", kind="regression"))
D = torch.float64


def _batches(n_envs: int, seed: int = 0, tasks: tuple[Task, ...] = TASKS) -> list[Batch]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for e in range(n_envs):
        n = 7 + 3 * e
        x = torch.randn(n, 5, generator=gen, dtype=D)
        cols = [torch.randint(0, t.n_classes, (n,), generator=gen).to(D) if t.kind == "classification"
                else torch.randn(n, generator=gen, dtype=D) for t in tasks]
        y = torch.stack(cols, 1)
        y[torch.rand(n, len(tasks), generator=gen) < 0.3] = float("nan")  # missing labels
        if e == 1 and len(tasks) > 1:
            y[:, 1] = float("nan")  # environment 1 has no label of task c3: R = 0, no gradient
        out.append(Batch(x, y, torch.full((n,), e)))
    return out


def _model(arch: str, tasks: tuple[Task, ...] = TASKS, head_hidden: tuple[int, ...] = ()):
    with seeded(1):
        if arch == "trunk":
            model = SharedTrunk(MLPEncoder(5, (6,)), tasks, head_hidden=head_hidden)
        elif arch == "mmoe":
            model = MMoE(lambda: MLPEncoder(5, (6,)), tasks, n_experts=3, head_hidden=head_hidden)
        else:
            model = FPS(MLPEncoder(5, (6,)), tasks)
    return model.to(D)


def _grad_of_penalty(method: IRM, batches: list[Batch]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Value and gradient w.r.t. all model parameters of the penalty term of ``objective``."""
    m = method
    m.hparams["lambda"] = m.hparams["warmup"] = 1.0
    loss_pen, _ = m.objective(batches)  # task + 1·penalty
    m.hparams["lambda"] = m.hparams["warmup"] = 0.0
    loss_task, logs = m.objective(batches)  # task only
    params = list(m.model.parameters())
    g1 = torch.autograd.grad(loss_pen, params, allow_unused=True)
    g0 = torch.autograd.grad(loss_task, params, allow_unused=True)
    grads = [torch.zeros_like(p) if a is None else a - (torch.zeros_like(p) if b is None else b)
             for p, a, b in zip(params, g1, g0)]
    return logs["penalty"], grads


CLASSIFICATION = (Task("a", n_classes=3), Task("b", n_classes=3), Task("c", n_classes=3))


@pytest.mark.parametrize("arch", ["trunk", "mmoe"])
@pytest.mark.parametrize("n_envs", [2, 3])
@pytest.mark.parametrize("tasks", [TASKS, CLASSIFICATION], ids=["mixed", "classification"])
def test_closed_form_equals_autograd_value_and_gradient(arch, n_envs, tasks):
    batches = _batches(n_envs, seed=n_envs, tasks=tasks)
    fast = IRM(_model(arch, tasks))
    slow = IRM(_model(arch, tasks), penalty="autograd")
    v_fast, g_fast = _grad_of_penalty(fast, batches)
    assert fast.used_closed_form
    v_slow, g_slow = _grad_of_penalty(slow, batches)
    assert not slow.used_closed_form
    assert float(v_slow) > 1e-3  # a non-trivial penalty
    torch.testing.assert_close(v_fast, v_slow, rtol=1e-10, atol=1e-12)
    moved = 0
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        moved += int(b.abs().max() > 1e-6)
    assert moved >= 4  # the penalty trains heads, encoder (and gates): not an all-zero comparison


def test_closed_form_function_equals_irm_penalty_on_hand_built_heads():
    """The function alone, on raw tensors: heads z = W h + b, NLL of log_softmax and squared error."""
    gen = torch.Generator().manual_seed(5)
    b, n_envs = 12, 3
    widths = (4, 3, 5)  # heads of different input widths
    h = [torch.randn(b, d, generator=gen, dtype=D, requires_grad=True) for d in widths]
    lin = [torch.nn.Linear(d, t.n_classes if t.kind == "classification" else 1).to(D)
           for d, t in zip(widths, TASKS)]
    outs = [torch.log_softmax(f(x), -1) if t.kind == "classification" else f(x).squeeze(-1)
            for f, x, t in zip(lin, h, TASKS)]
    y = torch.stack([torch.randint(0, t.n_classes, (b,), generator=gen).to(D) if t.kind == "classification"
                     else torch.randn(b, generator=gen, dtype=D) for t in TASKS], 1)
    y[torch.rand(b, 3, generator=gen) < 0.25] = float("nan")
    group = torch.arange(b) % n_envs
    # the risks written out independently of row_losses / grouped_risks
    risks = torch.zeros(n_envs, len(TASKS), dtype=D)
    for e in range(n_envs):
        for t, task in enumerate(TASKS):
            rows = (group == e) & ~torch.isnan(y[:, t])
            if task.kind == "classification":
                ll = outs[t][rows].gather(1, y[rows, t].long()[:, None]).squeeze(1)
                risks[e, t] = -ll.mean()
            else:
                risks[e, t] = ((outs[t][rows] - y[rows, t]) ** 2).mean()
    params = [p for f in lin for p in f.parameters()]
    ref = irm_penalty(risks, params)
    got = irm_penalty_linear_heads(h, outs, y, TASKS, group, n_envs)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=0)
    g_ref = torch.autograd.grad(ref, h + params, retain_graph=True)
    g_got = torch.autograd.grad(got, h + params)
    for a, c in zip(g_got, g_ref):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_irm_penalty_zero_when_every_environment_is_fit():
    """A perfectly fit regression head (residual 0 in every environment) has no penalty."""
    h = torch.randn(6, 2, dtype=D, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([[1.5, -2.0]], dtype=D)
    out = (h @ w.T).squeeze(-1)
    y = out.detach()[:, None].clone()
    pen = irm_penalty_linear_heads([h], [out], y, (Task("r", kind="regression"),),
                                   torch.arange(6) % 2, 2)
    assert float(pen) == 0.0


@pytest.mark.parametrize("arch,hidden", [("trunk", (4,)), ("mmoe", (4,)), ("fps", ())])
def test_other_predictors_fall_back_to_autograd(arch, hidden):
    tasks = (Task("a", n_classes=2), Task("b", n_classes=3)) if arch == "fps" else TASKS
    model = _model(arch, tasks, head_hidden=hidden)
    assert linear_heads(model) is None
    m = IRM(model)
    _, logs = m.objective(_batches(2, tasks=tasks))
    assert not m.used_closed_form
    assert torch.isfinite(logs["penalty"])


def test_frozen_head_falls_back_to_autograd():
    model = _model("trunk")
    assert linear_heads(model) is not None
    model.heads[0].net[0].bias.requires_grad_(False)
    assert linear_heads(model) is None


def test_penalty_option_is_validated():
    with pytest.raises(ValueError, match="penalty"):
        IRM(_model("trunk"), penalty="fast")


def test_freezing_a_head_after_a_step_switches_to_autograd():
    """The heads are checked once and cached; freezing a head parameter still takes effect."""
    m = IRM(_model("trunk"))
    batches = _batches(2)
    m.objective(batches)
    assert m.used_closed_form
    m.model.heads[2].net[0].weight.requires_grad_(False)
    m.objective(batches)
    assert not m.used_closed_form


def test_float64_outputs_keep_float64_losses():
    """row_losses upcasts half precision to float32 but keeps float64 (the 1e-10 checks above need it)."""
    from causalmtl.nn.base import loss_precision, row_losses

    out64 = [torch.log_softmax(torch.randn(4, 3, dtype=D), -1), torch.randn(4, dtype=D)]
    y = torch.tensor([[0.0, 0.1], [1.0, 0.2], [2.0, 0.3], [1.0, 1.0 / 3.0]], dtype=D)
    tasks = (Task("c", n_classes=3), Task("r", kind="regression"))
    losses = row_losses(out64, y, tasks)
    assert losses.dtype == D
    torch.testing.assert_close(losses[:, 1], (out64[1] - y[:, 1]) ** 2, rtol=1e-15, atol=0)
    assert loss_precision(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert row_losses([o.float() for o in out64], y, tasks).dtype == torch.float32
