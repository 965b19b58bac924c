"""Task-to-module gradients and heat maps (MT-CRL Figure 4 case study)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from causalmtl.data import MultiTaskDataset, Task
from causalmtl.methods.batch import Batch
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.methods.mtcrl.diagnostics import (
    module_gradient_report,
    plot_graph,
    plot_heatmap,
    task_module_gradients,
)
from causalmtl.nn import MLPEncoder, MMoE, SharedTrunk, seeded
from causalmtl.nn.mtcrl import MTCRLNet

TASKS = (Task("a", "classification", 3), Task("b", "regression"))


def data(seed=0, n=30):
    rng = np.random.default_rng(seed)
    y = np.stack([rng.integers(0, 3, n).astype(float), rng.normal(size=n)], 1)
    y[rng.random((n, 2)) < 0.2] = np.nan
    return MultiTaskDataset(rng.normal(size=(n, 5)), y, TASKS)


def mtcrl_net():
    with seeded(0):
        net = MTCRLNet(lambda d: nn.Sequential(nn.Linear(5, d), nn.Tanh()), TASKS, n_modules=3, width=6)
        for row in net.theta_rows:
            nn.init.normal_(row)
    return net.double()


def mmoe_net():
    with seeded(0):
        return MMoE(lambda: MLPEncoder(5, (4,)), TASKS, n_experts=3).double()


def risks_with_scale(model, batch, scale):
    """R_t with task-to-module routing multiplied by `scale` (T, K), written out directly."""
    if isinstance(model, MTCRLNet):
        z = [enc(batch.x) for enc in model.encoders]
        mixed = torch.stack([torch.cat([model.graph[t, i] * scale[t, i] * z[i] for i in range(len(z))], 1)
                             for t in range(len(TASKS))], 1)  # routing="concat": modules side by side
        outs = model.predict_from_mixed(mixed)
    else:
        ex = [e(batch.x) for e in model.experts]
        g = model.gate_weights(batch.x)
        outs = [model.heads[t](sum(g[:, t, i:i + 1] * scale[t, i] * ex[i] for i in range(len(ex))))
                for t in range(len(TASKS))]
    y = batch.y.double()
    obs = ~torch.isnan(y)
    nll = -outs[0].gather(1, torch.nan_to_num(y[:, 0]).long()[:, None])[:, 0]
    sq = (outs[1] - torch.nan_to_num(y[:, 1])) ** 2
    return torch.stack([nll[obs[:, 0]].mean(), sq[obs[:, 1]].mean()])  # float64 masked risks


@pytest.mark.parametrize("make", [mtcrl_net, mmoe_net])
def test_scale_gradient_matches_finite_differences(make):
    model = make()
    d = data()
    got = task_module_gradients(model, d, batch_size=7)  # several mini-batches
    batch = Batch.from_dataset(d)
    batch = Batch(batch.x.double(), batch.y.double(), batch.env)
    k = got.shape[1]
    h = 1e-6
    with torch.no_grad():
        for t in range(len(TASKS)):
            for i in range(k):
                up = torch.ones(len(TASKS), k, dtype=torch.float64)
                dn = up.clone()
                up[t, i] += h
                dn[t, i] -= h
                fd = (risks_with_scale(model, batch, up)[t] - risks_with_scale(model, batch, dn)[t]) / (2 * h)
                assert got[t, i] == pytest.approx(float(fd), abs=1e-6)
    assert np.abs(got).max() > 1e-4


def test_graph_gradient_is_scale_gradient_over_a():
    model = mtcrl_net()
    d = data(1)
    scale = task_module_gradients(model, d, wrt="scale")
    graph = task_module_gradients(model, d, wrt="graph", batch_size=4)
    np.testing.assert_allclose(graph * model.graph.detach().numpy(), scale, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="needs an MTCRLNet"):
        task_module_gradients(mmoe_net(), d, wrt="graph")
    with pytest.raises(ValueError, match="modular model"):
        with seeded(0):
            task_module_gradients(SharedTrunk(MLPEncoder(5, (4,)), TASKS), d)
    with pytest.raises(ValueError, match="wrt must be"):
        task_module_gradients(model, d, wrt="theta")


def test_unlabelled_task_gives_nan_row():
    d = data(2)
    y = d.targets.copy()
    y[:, 1] = np.nan
    g = task_module_gradients(mtcrl_net(), MultiTaskDataset(d.inputs, y, TASKS))
    assert np.isfinite(g[0]).all() and np.isnan(g[1]).all()


def test_figure4_flags_the_spurious_module_of_a_confounded_task(tmp_path):
    # Multi-SEM: task a's causal factor is weak, task b's factor (module 1) strongly agrees with
    # y_a on train (95 %) and disagrees on valid (5 %).
    g = torch.Generator().manual_seed(1)

    def split(n, agree):
        ya = torch.randint(0, 2, (n,), generator=g)
        yb = torch.where(torch.rand(n, generator=g) < agree, ya, 1 - ya)
        x = torch.cat([(2 * ya - 1)[:, None] * 0.15 + torch.randn(n, 4, generator=g),
                       (2 * yb - 1)[:, None] * 1.0 + torch.randn(n, 4, generator=g)], 1)
        return MultiTaskDataset(x.numpy(), torch.stack([ya, yb], 1).numpy(), tasks)

    class Block(nn.Module):
        def __init__(self, lo):
            super().__init__()
            self.lo = lo
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x[:, self.lo:self.lo + 4])

    tasks = (Task("a", "classification", 2), Task("b", "classification", 2))
    train, valid = split(256, 0.95), split(256, 0.05)
    with seeded(1):
        net = MTCRLNet([Block(0), Block(4)], tasks, width=8)
    method = MTCRL(net, girm="none")
    method.configure_optimizer(torch.optim.Adam(method.parameters(), lr=0.05))
    tb = Batch.from_dataset(train)
    for _ in range(100):
        method.update([tb])
    rep = module_gradient_report(net, train, valid)
    # at the trained optimum the train gradients are small; valid - train exposes the spurious
    # module: using module 1 more hurts task a on valid far more than using module 0
    vmt = rep.valid_minus_train
    assert vmt[0, 1] > 0.1
    assert vmt[0, 1] > 5 * abs(vmt[0, 0])
    assert np.abs(rep.train).max() < 0.1
    frame = rep.to_frame()
    assert list(frame.columns) == ["task", "module", "train", "valid", "valid_minus_train"]
    assert len(frame) == 4
    np.testing.assert_allclose(frame["valid_minus_train"].to_numpy(), vmt.ravel())

    png = rep.plot(tmp_path / "fig4" / "gradients.png")
    img = Image.open(png)
    assert img.format == "PNG" and img.size[0] > img.size[1] > 50
    png = plot_graph(net, tmp_path / "graph.png")
    assert Image.open(png).format == "PNG"


def test_plot_heatmap_errors(tmp_path):
    with pytest.raises(ValueError, match="row_labels has 1 names"):
        plot_heatmap(np.zeros((2, 3)), tmp_path / "x.png", row_labels=["a"])
    with pytest.raises(ValueError, match="2-D"):
        plot_heatmap([np.zeros(3)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="needs an MTCRLNet"):
        plot_graph(mmoe_net(), tmp_path / "x.png")
