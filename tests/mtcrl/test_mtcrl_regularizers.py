"""MT-CRL regularisers pinned to Eq. (1)-(3), (8), (9) by brute force."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from causalmtl.methods.mtcrl.regularizers import (
    balance_entropy,
    decorrelation_penalty,
    girm_norm,
    girm_variance,
    graph_regularizer,
    graph_risk_gradients,
    module_correlation,
)


def naive_decorrelation(blocks: list[np.ndarray]) -> float:
    """Eq. (1)-(2) literally: loop over module pairs i<j and over their output dimensions."""
    total = 0.0
    for i, j in itertools.combinations(range(len(blocks)), 2):
        for p in range(blocks[i].shape[1]):
            for q in range(blocks[j].shape[1]):
                a = blocks[i][:, p] - blocks[i][:, p].mean()
                b = blocks[j][:, q] - blocks[j][:, q].mean()
                rho = (a @ b) / (math.sqrt(a @ a) * math.sqrt(b @ b))
                total += rho * rho
    return total


def test_decorrelation_matches_double_loop_on_random_data():
    rng = np.random.default_rng(0)
    # correlated modules: a shared latent leaks into every module
    latent = rng.normal(size=(40, 3))
    z = rng.normal(size=(40, 4, 5)) + (latent @ rng.normal(size=(3, 20))).reshape(40, 4, 5)
    got = float(decorrelation_penalty(torch.as_tensor(z), eps=0.0))
    want = naive_decorrelation([z[:, k, :] for k in range(4)])
    assert want > 1.0  # the data really is correlated across modules
    assert got == pytest.approx(want, abs=1e-6, rel=1e-9)


def test_decorrelation_accepts_modules_of_different_widths():
    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(30, w)) for w in (1, 3, 2)]
    blocks[2][:, 0] += 2 * blocks[0][:, 0]
    got = float(decorrelation_penalty([torch.as_tensor(b) for b in blocks], eps=0.0))
    assert got == pytest.approx(naive_decorrelation(blocks), abs=1e-6)


def test_correlation_matrix_matches_numpy_corrcoef():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(25, 3, 2))
    got = module_correlation(torch.as_tensor(z), eps=0.0).numpy()
    np.testing.assert_allclose(got, np.corrcoef(z.reshape(25, 6), rowvar=False), atol=1e-12)


def test_decorrelation_zero_for_uncorrelated_modules():
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))  # orthogonal, centred columns
    z = torch.as_tensor(q.reshape(50, 4, 2))
    assert float(decorrelation_penalty(z)) < 1e-12
    # ... but within-module correlation is not penalised: make the two dims of module 0 equal
    z2 = z.clone()
    z2[:, 0, 1] = z2[:, 0, 0]
    assert float(decorrelation_penalty(z2)) < 1e-12
    # and correlation across modules is: copy module 0 into module 1
    z3 = z.clone()
    z3[:, 1, :] = z3[:, 0, :]
    assert float(decorrelation_penalty(z3, eps=0.0)) == pytest.approx(2.0, abs=1e-9)


def test_decorrelation_independent_modules_from_disjoint_inputs():
    # modules reading statistically independent inputs decorrelate as B grows (E ρ² = 1/(B-1))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    z = torch.stack([x[:, :2] * 3.0, x[:, 2:] - 1.0], dim=1)  # module 0 sees x0,x1; module 1 x2,x3
    val = float(decorrelation_penalty(z))
    assert val < 4 * 5.0 / 20000  # 4 pairs, each ρ² ~ 1/B; generous tolerance


def test_decorrelation_gradient_reaches_every_module():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(32, 6, generator=g)
    shared = torch.randn(6, 3, generator=g)
    mods = nn.ModuleList([nn.Linear(6, 3) for _ in range(3)])
    z = torch.stack([m(x) + x @ shared for m in mods], dim=1)
    decorrelation_penalty(z).backward()
    for m in mods:
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


def test_decorrelation_gradcheck():
    z = torch.randn(7, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: decorrelation_penalty(t), (z,))


def test_decorrelation_single_module_has_no_pairs():
    z = torch.randn(10, 1, 4)
    z[:, 0, 1] = z[:, 0, 0]  # correlated, but within the one module
    assert float(decorrelation_penalty(z)) == 0.0


def test_decorrelation_bad_shapes():
    with pytest.raises(ValueError, match="at least 2"):
        decorrelation_penalty(torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(B, K, m\)"):
        decorrelation_penalty(torch.randn(4, 6))
    with pytest.raises(ValueError, match="same B"):
        decorrelation_penalty([torch.randn(4, 2), torch.randn(5, 2)])


def test_graph_regularizer_hand_checked():
    a = torch.tensor([[0.5, 0.25], [0.25, 0.0]], dtype=torch.float64)
    # ‖A‖₁ = 1; column sums (0.75, 0.25) / 1 -> entropy -(.75 ln .75 + .25 ln .25)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert float(balance_entropy(a)) == pytest.approx(entropy, abs=1e-12)
    got = float(graph_regularizer(a, lambda_sps=0.3, lambda_bal=2.0))
    assert got == pytest.approx(0.3 * 1.0 - 2.0 * entropy, abs=1e-12)


def test_graph_regularizer_balance_is_maximal_for_even_usage():
    even = torch.full((3, 4), 0.5)
    assert float(balance_entropy(even)) == pytest.approx(math.log(4), abs=1e-6)
    skew = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 3)
    assert float(balance_entropy(skew)) == pytest.approx(0.0, abs=1e-7)


def test_graph_regularizer_rejects_negative_lambdas():
    a = torch.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="lambda_sps"):
        graph_regularizer(a, lambda_sps=-0.1, lambda_bal=1.0)
    with pytest.raises(ValueError, match="lambda_bal"):
        graph_regularizer(a, lambda_sps=0.1, lambda_bal=float("nan"))


# --- G-IRM on a hand-built routed model (independent of MTCRLNet) -------------------------


def _toy(e_count=3, t_count=3, k=4, m=2, b=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(t_count, k, generator=g, dtype=torch.float64, requires_grad=True)
    enc = torch.randn(5, k * m, generator=g, dtype=torch.float64, requires_grad=True)
    heads = [torch.randn(m, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(t_count)]
    xs = [torch.randn(b, 5, generator=g, dtype=torch.float64) for _ in range(e_count)]
    ys = [torch.randint(0, 3, (b, t_count), generator=g) for _ in range(e_count)]
    return theta, enc, heads, xs, ys


def _risks(graph, enc, heads, x, y):
    """Per-task cross-entropy risks of the routed toy model for one environment (T,)."""
    z = torch.tanh(x @ enc).reshape(x.shape[0], graph.shape[1], -1)
    mixed = torch.einsum("tk,bkm->btm", graph, z)
    return torch.stack(
        [nn.functional.cross_entropy(mixed[:, t] @ heads[t].detach(), y[:, t]) for t in range(len(heads))]
    )


def test_one_call_graph_gradients_equal_naive_loop():
    theta, enc, heads, xs, ys = _toy()
    a = torch.sigmoid(theta)
    reps = a.unsqueeze(0).repeat(len(xs), 1, 1)
    risks = torch.stack([_risks(reps[e], enc, heads, x, y) for e, (x, y) in enumerate(zip(xs, ys))])
    fast = graph_risk_gradients(risks, reps)
    naive = torch.zeros_like(fast)
    for e, (x, y) in enumerate(zip(xs, ys)):
        for t in range(len(heads)):
            a_e = torch.sigmoid(theta)
            r = _risks(a_e, enc, heads, x, y)[t]
            (g,) = torch.autograd.grad(r, a_e, create_graph=True)
            assert g[[i for i in range(len(heads)) if i != t]].abs().max() == 0  # only row t
            naive[e, t] = g[t]
    torch.testing.assert_close(fast, naive, atol=1e-10, rtol=0)

    # the penalties and their gradients w.r.t. Φ and θ agree with the naive construction
    for penalty in (girm_norm, girm_variance):
        p_fast, p_naive = penalty(fast), penalty(naive)
        assert float(p_fast.detach()) == pytest.approx(float(p_naive.detach()), abs=1e-6)
        g_fast = torch.autograd.grad(p_fast, (theta, enc), retain_graph=True)
        g_naive = torch.autograd.grad(p_naive, (theta, enc), retain_graph=True)
        for gf, gn in zip(g_fast, g_naive):
            assert gf.abs().sum() > 0
            torch.testing.assert_close(gf, gn, atol=1e-6, rtol=0)


def test_girm_formulas():
    g = torch.tensor(
        [[[1.0, 2.0], [0.0, -1.0]], [[3.0, 0.0], [0.0, 1.0]]], dtype=torch.float64
    )  # (E=2, T=2, K=2)
    assert float(girm_norm(g)) == 1 + 4 + 1 + 9 + 1
    # mean over e: [[2,1],[0,0]]; deviations ±[[1,1],[0,1]] -> (1/2)·2·3
    assert float(girm_variance(g)) == pytest.approx(3.0)


def test_girm_needs_two_environments():
    with pytest.raises(ValueError, match="at least 2 environments"):
        girm_variance(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="at least 2 environments"):
        girm_norm(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(E, T\)"):
        graph_risk_gradients(torch.zeros(2, 3), torch.zeros(2, 2, 4))
