"""Every architecture × method trains a few steps on a tiny dataset on CPU and its loss goes down."""

from __future__ import annotations

import pytest
import torch

from causalmtl.data.base import Task
from causalmtl.methods import METHODS, Batch
from causalmtl.nn import (
    FPS,
    STL,
    CrossStitchNetwork,
    MLPEncoder,
    MMoE,
    MTCRLNet,
    SharedTrunk,
    seeded,
)

TASKS = (Task("a", n_classes=2), Task("b", n_classes=3))

ARCHS = {
    "stl": lambda: STL(lambda: MLPEncoder(6, (16,)), TASKS),
    "shared-trunk": lambda: SharedTrunk(MLPEncoder(6, (16,)), TASKS),
    "cross-stitch": lambda: CrossStitchNetwork([MLPEncoder(6, (16, 16)) for _ in TASKS], TASKS),
    "mmoe": lambda: MMoE(lambda: MLPEncoder(6, (16,)), TASKS, n_experts=3),
    "fps": lambda: FPS(MLPEncoder(6, (16,)), TASKS),
    "mtcrl-net": lambda: MTCRLNet(lambda d: MLPEncoder(6, (16, d)), TASKS, n_modules=4, width=16),
}


def _combinations() -> list[tuple[str, str]]:
    """Every baseline on every architecture; MT-CRL only on its own modular network."""
    return [
        (arch, name)
        for name in sorted(METHODS)
        for arch in sorted(ARCHS)
        if name != "mtcrl" or arch == "mtcrl-net"
    ]


def _env_batch(env: int, n: int = 32) -> Batch:
    gen = torch.Generator().manual_seed(10 + env)
    x = torch.randn(n, 6, generator=gen)
    a = (x[:, 0] > 0).float()
    b = torch.bucketize(x[:, 1] + 0.5 * x[:, 2], torch.tensor([-0.5, 0.5])).float()
    y = torch.stack([a, b], 1)
    y[::5, 0] = float("nan")  # some missing labels
    return Batch(x, y, torch.full((n,), env, dtype=torch.long))


@pytest.mark.parametrize("arch, method_name", _combinations())
def test_trains_and_loss_goes_down(arch, method_name):
    with seeded(0):
        model = ARCHS[arch]()
        method = METHODS[method_name](model)
    method.configure_optimizer(torch.optim.Adam(method.param_groups(1e-2), lr=1e-2))
    method.total_steps = 25
    batches = [_env_batch(0), _env_batch(1)]
    if method.env_protocol == "pooled":
        from causalmtl.methods import cat_batches

        batches = [cat_batches(batches)[0]]

    def task_loss() -> float:
        with torch.no_grad():
            b = cat_batches_all(batches)
            return float(model.task_losses(model.forward_full(b.x), b.y).sum())

    before = task_loss()
    for _ in range(25):
        logs = method.update(batches)
        assert torch.isfinite(logs["loss"])
    after = task_loss()
    assert after < 0.9 * before, (before, after)
    assert method.steps == 25


def cat_batches_all(batches):
    from causalmtl.methods import cat_batches

    return cat_batches(batches)[0]
