"""Rank entry point of the dense data-parallel test: train the tiny dense model on streamed
data in 2 gloo processes and save the weights (see test_ddp_dense.py)."""

from __future__ import annotations

from pathlib import Path

import torch

import _dense_toy as toy
from causalmtl.methods import ERM, IRM, PCGrad
from causalmtl.train import Trainer

METHODS = {"erm": ERM, "irm": IRM, "pcgrad": PCGrad}


def train(name: str):
    method = METHODS[name](toy.model())
    proto = "mtcrl" if name == "irm" else "split"
    Trainer(method, epochs=2, batch_size=14, lr=1e-2, seed=3, protocol=proto).fit(toy.splits(streamed=True))
    return {k: v.detach().clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}


def rank_main(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from _ddp_common import init_env

    init_env(rank, world, port)
    try:
        for name in METHODS:
            torch.save(train(name), Path(out) / f"{name}-rank{rank}.pt")
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
