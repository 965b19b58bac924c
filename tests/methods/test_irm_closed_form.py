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


# --- the unbiased split-batch estimator (Arjovsky et al. 2019, §3.2) beside Eq. (6)'s squared norm:
# closed form = autograd; brute force = the product of the two half-batch gradients; unbiased over
# many batches of 32 against the population value, where the full-batch squared norm is biased up.
import numpy as np  # noqa: E402

from causalmtl.methods.irm import half_index  # noqa: E402


def test_half_index_alternates_within_each_environment():
    which = torch.tensor([0, 0, 0, 1, 1, 0, 1, 2])
    assert half_index(which, 3).tolist() == [0, 1, 0, 2, 3, 1, 2, 4]


@pytest.mark.parametrize("arch", ["trunk", "mmoe"])
@pytest.mark.parametrize("tasks", [TASKS, CLASSIFICATION], ids=["mixed", "classification"])
def test_split_closed_form_equals_autograd(arch, tasks):
    batches = _batches(2, seed=3, tasks=tasks)
    fast = IRM(_model(arch, tasks), estimator="split")
    slow = IRM(_model(arch, tasks), penalty="autograd", estimator="split")
    v_fast, g_fast = _grad_of_penalty(fast, batches)
    assert fast.used_closed_form
    v_slow, g_slow = _grad_of_penalty(slow, batches)
    assert abs(float(v_slow)) > 1e-5
    torch.testing.assert_close(v_fast, v_slow, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    v_full, _ = _grad_of_penalty(IRM(_model(arch, tasks)), batches)
    assert float(v_full) != pytest.approx(float(v_fast))  # a different estimator


def test_split_is_the_product_of_the_two_half_gradients():
    model = _model("trunk", CLASSIFICATION)
    batches = _batches(2, seed=5, tasks=CLASSIFICATION)
    method = IRM(model, estimator="split")
    method.hparams["lambda"] = method.hparams["warmup"] = 1.0
    _, logs = method.objective(batches)
    x = torch.cat([b.x for b in batches])
    y = torch.cat([b.y for b in batches])
    which = torch.cat([torch.full((len(b),), e) for e, b in enumerate(batches)])
    half = half_index(which, 2)
    params = model.predictor_parameters()
    expected = 0.0
    for e in range(2):
        g = []
        for h in (0, 1):
            rows = half == 2 * e + h
            risks = model.task_losses(model.forward_full(x[rows]), y[rows])
            g.append(torch.autograd.grad(risks.sum(), params))
        expected += sum(float((a * b).sum()) for a, b in zip(*g))
    assert float(logs["penalty"]) == pytest.approx(expected, rel=1e-9)


def test_split_estimator_is_unbiased_and_full_batch_is_biased_upward():
    n, batch, draws = 4000, 32, 3000
    tasks = (Task("a", n_classes=3),)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=gen, dtype=D)
    y = torch.randint(0, 3, (n, 1), generator=gen).to(D)
    with seeded(0):
        model = SharedTrunk(MLPEncoder(4, (5,)), tasks).to(D)
    with torch.no_grad():
        h = model.encoder(x)
        out = model.forward_full(x).outputs
    # population value: the squared norm of the gradient of the risk on all n rows
    zero = torch.zeros(n, dtype=torch.long)
    population = float(irm_penalty_linear_heads([h], out, y, tasks, zero, 1))
    rng = np.random.default_rng(1)
    idx = torch.as_tensor(rng.integers(0, n, (draws, batch)))  # i.i.d. rows, as the estimator assumes
    full, split = np.empty(draws), np.empty(draws)
    zeros = torch.zeros(batch, dtype=torch.long)
    halves = half_index(zeros, 1)
    for d in range(draws):  # a loop over batches (each call vectorised over its rows)
        r = idx[d]
        hb, ob, yb = [h[r]], [out[0][r]], y[r]
        full[d] = float(irm_penalty_linear_heads(hb, ob, yb, tasks, zeros, 1))
        split[d] = float(irm_penalty_linear_heads(hb, ob, yb, tasks, halves, 2, split=True))
    se = split.std() / np.sqrt(draws)
    assert abs(split.mean() - population) < 4 * se, (split.mean(), population, se)
    assert full.mean() > population + 10 * full.std() / np.sqrt(draws), (full.mean(), population)
    assert full.mean() / population > 1.5  # the variance term dominates at batch 32


def test_bad_estimator_names_the_choices():
    with pytest.raises(ValueError, match="estimator must be one of"):
        IRM(_model("trunk"), estimator="half")
    with pytest.raises(ValueError, match="2 groups"):
        irm_penalty_linear_heads([torch.zeros(2, 3)], [torch.zeros(2, 2)], torch.zeros(2, 1),
                                 (Task("a", n_classes=2),), torch.zeros(2, dtype=torch.long), 3, split=True)
    with pytest.raises(ValueError, match="2 rows"):
        irm_penalty(torch.zeros(3, 1, requires_grad=True), [torch.nn.Parameter(torch.zeros(1))], split=True)


def test_irm_trains_with_the_split_estimator():
    batches = _batches(2, seed=7, tasks=CLASSIFICATION)
    method = IRM(_model("mmoe", CLASSIFICATION), estimator="split", **{"lambda": 10.0})
    method.configure_optimizer(torch.optim.Adam(method.model.parameters(), lr=1e-2))
    logs = method.update(batches)
    assert torch.isfinite(logs["loss"])
