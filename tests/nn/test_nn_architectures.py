"""Architectures: contract, formulas (MMoE, FPS, cross-stitch), encoders, parameter partition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from causalmtl.data.base import Task
from causalmtl.nn import (
    FPS,
    NPS,
    STL,
    CNNEncoder,
    CrossStitch,
    CrossStitchNetwork,
    EmbeddingEncoder,
    MLPEncoder,
    MMoE,
    SharedTrunk,
    masked_task_losses,
    row_losses,
    seeded,
)

TASKS = (Task("a", n_classes=2), Task("b", n_classes=3))


def _x(n: int = 7, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", [
    lambda: STL(lambda: MLPEncoder(5, (8,)), TASKS),
    lambda: SharedTrunk(MLPEncoder(5, (8,)), TASKS),
    lambda: CrossStitchNetwork([MLPEncoder(5, (8, 8)) for _ in TASKS], TASKS),
    lambda: MMoE(lambda: MLPEncoder(5, (8,)), TASKS, n_experts=3),
    lambda: FPS(MLPEncoder(5, (8,)), TASKS),
], ids=["stl", "stn", "cross-stitch", "mmoe", "fps"])
def test_contract_outputs_are_normalised_log_probs_and_partition_is_complete(make):
    with seeded(0):
        model = make()
    out = model.forward_full(_x())
    assert len(out.outputs) == 2
    for o, task in zip(out.outputs, TASKS):
        assert o.shape == (7, task.n_classes)
        torch.testing.assert_close(o.exp().sum(1), torch.ones(7))
    assert out.features is not None and out.features.shape == (7, model.feature_dim)
    shared = {id(p) for p in model.shared_parameters()}
    own = [{id(p) for p in model.task_parameters(t)} for t in range(2)]
    assert not (shared & own[0]) and not (shared & own[1]) and not (own[0] & own[1])
    assert shared | own[0] | own[1] == {id(p) for p in model.parameters()}


def test_task_parameters_only_influence_their_task():
    with seeded(1):
        model = MMoE(lambda: MLPEncoder(5, (8,)), TASKS, n_experts=2)
    outs = model(_x())
    g = torch.autograd.grad(outs[1].sum(), model.task_parameters(0), allow_unused=True)
    assert all(x is None or torch.count_nonzero(x) == 0 for x in g)


def test_seeded_is_reproducible_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    with seeded(3):
        a = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    with seeded(3):
        b = SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    assert torch.equal(before, torch.get_rng_state())
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_mmoe_matches_gated_mixture_formula():
    with seeded(2):
        model = MMoE(lambda: MLPEncoder(5, (8,)), TASKS, n_experts=3)
    x = _x()
    out = model.forward_full(x)
    experts = [e(x) for e in model.experts]
    logits = x @ model.gates.weight.T + model.gates.bias
    for t in range(2):
        g = torch.softmax(logits[:, t * 3:(t + 1) * 3], dim=1)
        mixed = sum(g[:, k:k + 1] * experts[k] for k in range(3))
        torch.testing.assert_close(out.outputs[t], model.heads[t](mixed))
    torch.testing.assert_close(out.extra["gates"].sum(-1), torch.ones(7, 2))


def test_fps_marginals_and_joint_nll_with_missing_labels():
    with seeded(4):
        model = FPS(MLPEncoder(5, (8,)), TASKS)
    x = _x(4)
    out = model.forward_full(x)
    joint = out.extra["joint"]
    assert joint.shape == (4, 2, 3)
    torch.testing.assert_close(joint.exp().flatten(1).sum(1), torch.ones(4))
    torch.testing.assert_close(out.outputs[0], torch.logsumexp(joint, dim=2))
    torch.testing.assert_close(out.outputs[1], torch.logsumexp(joint, dim=1))
    y = torch.tensor([[1.0, 2.0], [0.0, float("nan")], [float("nan"), 1.0], [float("nan"), float("nan")]])
    r = model.row_losses(out, y)
    p = joint.exp()
    expected = torch.stack([
        -torch.log(p[0, 1, 2]),
        -torch.log(p[1, 0, :].sum()),
        -torch.log(p[2, :, 1].sum()),
        torch.tensor(0.0),
    ])
    torch.testing.assert_close(r.sum(1), expected)
    assert r[1, 1] == 0 and r[2, 0] == 0 and (r[3] == 0).all()
    # chain rule: task 0's share of a full row is -log p(y_0 | x)
    torch.testing.assert_close(r[0, 0], -out.outputs[0][0, 1])


def test_fps_rejects_regression_tasks():
    with pytest.raises(ValueError, match="classification tasks only"):
        FPS(MLPEncoder(5, (8,)), (Task("a", n_classes=2), Task("r", kind="regression")))


def test_cross_stitch_unit_init_and_mixing():
    unit = CrossStitch(2, 3, init_self=0.9)
    torch.testing.assert_close(unit.alpha[:, :, 0], torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    h0, h1 = torch.randn(4, 3), torch.randn(4, 3)
    m0, m1 = unit([h0, h1])
    torch.testing.assert_close(m0, 0.9 * h0 + 0.1 * h1)
    torch.testing.assert_close(m1, 0.1 * h0 + 0.9 * h1)
    three = CrossStitch(3, 2, init_self=0.8)
    torch.testing.assert_close(three.alpha.sum(1), torch.ones(3, 2))
    # 4-D (conv) activations: mixing per channel
    unit.alpha.data[0, 1, 2] = 0.5
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    m0, _ = unit([a, b])
    torch.testing.assert_close(m0[:, 2], 0.9 * a[:, 2] + 0.5 * b[:, 2])
    torch.testing.assert_close(m0[:, 0], 0.9 * a[:, 0] + 0.1 * b[:, 0])


def test_cross_stitch_from_stl_with_identity_reproduces_stl_outputs():
    with seeded(5):
        stl = STL(lambda: MLPEncoder(5, (8, 6)), TASKS)
    net = CrossStitchNetwork.from_stl(stl, init_self=1.0)
    x = _x()
    for a, b in zip(stl(x), net(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # copies, not shared modules; and 0.9 stitching changes the outputs
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(stl.parameters(), net.parameters()))
    mixed = CrossStitchNetwork.from_stl(stl, init_self=0.9)
    assert not torch.allclose(stl(x)[0], mixed(x)[0])


def test_cross_stitch_from_nps_of_cnns_any_sequence_of_layers():
    tasks = (Task("a", n_classes=2), Task("b", n_classes=2))
    with seeded(6):
        members = [SharedTrunk(CNNEncoder(1, (4, 6), out_dim=5), (t,)) for t in tasks]
    nps = NPS(members)
    net = CrossStitchNetwork.from_stl(nps, init_self=1.0, stitch_lr_mult=10.0)
    x = torch.randn(3, 1, 9, 7, generator=torch.Generator().manual_seed(0))
    for a, b in zip(nps(x), net(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert [len(s.alpha[0, 0]) for s in net.stitches.values()] == [4, 6, 5]
    groups = net.param_groups(1e-3)
    assert groups[1]["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.stitches.parameters()}


def test_cross_stitch_bad_input():
    with pytest.raises(ValueError, match="columns has 1 entries"):
        CrossStitchNetwork([MLPEncoder(5, (8,))], TASKS)
    with pytest.raises(ValueError, match="outside the columns"):
        CrossStitchNetwork([MLPEncoder(5, (8,)) for _ in TASKS], TASKS, stitch_after=[9])


def test_nps_combines_members_unchanged():
    with seeded(7):
        m1 = SharedTrunk(MLPEncoder(5, (8,)), (TASKS[0],))
        m2 = SharedTrunk(MLPEncoder(5, (8,)), (TASKS[1],))
    nps = NPS([m1, m2])
    x = _x()
    out = nps(x)
    torch.testing.assert_close(out[0], m1(x)[0])
    torch.testing.assert_close(out[1], m2(x)[0])
    assert nps.shared_parameters() == []
    assert {id(p) for p in nps.task_parameters(1)} == {id(p) for p in m2.parameters()}


def test_cnn_encoder_any_image_size():
    enc = CNNEncoder(1, (4, 8), out_dim=6)
    for shape in [(2, 1, 28, 28), (2, 5, 3), (2, 1, 1, 1), (2, 1, 64, 17)]:
        assert enc(torch.randn(*shape)).shape == (2, 6)
    enc3 = CNNEncoder(3, (4,), out_dim=2)
    assert enc3(torch.randn(2, 3, 32, 20)).shape == (2, 2)


def test_embedding_encoder_bags_ignore_padding():
    enc = EmbeddingEncoder({"user": 5, "item": 4, "title": 10}, dim=3, hidden=(6,), padding_idx=0)
    x = {"user": torch.tensor([1, 2]), "item": torch.tensor([3, 1]),
         "title": torch.tensor([[4, 5, 0, 0], [7, 0, 0, 0]])}
    assert enc(x).shape == (2, 6)
    emb = enc[0](x)
    w = enc[0].bags["title"].weight
    torch.testing.assert_close(emb[0, 6:9], (w[4] + w[5]) / 2)
    torch.testing.assert_close(emb[1, 6:9], w[7])
    torch.testing.assert_close(emb[0, 0:3], enc[0].bags["user"].weight[1])
    with pytest.raises(ValueError, match="lacks field"):
        enc({"user": x["user"]})


def test_mmoe_with_dict_inputs_and_regression_head():
    tasks = (Task("r1", kind="regression"), Task("r2", kind="regression"))
    vocab = {"user": 5, "title": 9}
    with seeded(8):
        model = MMoE(lambda: EmbeddingEncoder(vocab, 3, (4,)), tasks, n_experts=2,
                     gate_encoder=EmbeddingEncoder(vocab, 2, (3,)))
    x = {"user": torch.tensor([0, 4, 2]), "title": torch.tensor([[1, 2], [3, 0], [8, 8]])}
    outs = model(x)
    assert [o.shape for o in outs] == [(3,), (3,)]
    with pytest.raises(ValueError, match="gate"):
        MMoE(lambda: EmbeddingEncoder(vocab, 3, (4,)), tasks)


def test_row_losses_masked_and_formulas():
    logp = torch.log_softmax(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), 1)
    pred = torch.tensor([0.5, -1.0, 2.0, 0.0])
    tasks = (Task("c", n_classes=3), Task("r", kind="regression"))
    nan = float("nan")
    y = torch.tensor([[2.0, 1.0], [nan, 0.0], [0.0, nan], [1.0, 3.0]])
    r = row_losses([logp, pred], y, tasks)
    expected = torch.tensor([[-logp[0, 2], 0.25], [0.0, 1.0], [-logp[2, 0], 0.0], [-logp[3, 1], 9.0]])
    torch.testing.assert_close(r, expected)
    risks = masked_task_losses([logp, pred], y, tasks)
    torch.testing.assert_close(risks, torch.stack([(-logp[0, 2] - logp[2, 0] - logp[3, 1]) / 3,
                                                   torch.tensor((0.25 + 1 + 9) / 3)]))
    assert math.isfinite(float(risks.sum()))


def test_missing_labels_get_no_gradient():
    out = torch.randn(5, 2, requires_grad=True)
    logp = torch.log_softmax(out, 1)
    y = torch.tensor([[0.0], [float("nan")], [1.0], [float("nan")], [1.0]])
    masked_task_losses([logp], y, (Task("a", n_classes=2),)).sum().backward()
    assert torch.count_nonzero(out.grad[[1, 3]]) == 0
    assert torch.count_nonzero(out.grad[[0, 2, 4]]) > 0


def test_all_missing_task_has_zero_risk_not_nan():
    logp = torch.log_softmax(torch.randn(3, 2), 1)
    y = torch.full((3, 1), float("nan"))
    risks = masked_task_losses([logp], y, (Task("a", n_classes=2),))
    assert float(risks[0]) == 0.0 and not np.isnan(float(risks[0]))


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="zero-argument callable"):
        STL(MLPEncoder(5, (8,)), TASKS)
    with pytest.raises(ValueError, match="n_experts"):
        MMoE(lambda: MLPEncoder(5, (8,)), TASKS, n_experts=0)
    with pytest.raises(ValueError, match="dropout"):
        MLPEncoder(5, (8,), dropout=1.5)
