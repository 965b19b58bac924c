"""Data-parallel training on dense, streamed data: 2 gloo processes equal 1 process."""

from __future__ import annotations

import socket

import _ddp_dense as dense
import pytest
import torch
import torch.multiprocessing as mp

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense")
    for attempt in range(3):  # only a port taken between _free_port() and the bind is retried
        try:
            mp.spawn(dense.rank_main, args=(WORLD, _free_port(), str(out)), nprocs=WORLD, join=True)
            return out
        except Exception as exc:  # noqa: BLE001
            if attempt == 2 or not any(m in str(exc) for m in ("EADDRINUSE", "Address already in use")):
                raise
    return out


@pytest.mark.parametrize("name", sorted(dense.METHODS))
def test_two_processes_equal_one_process_on_dense_streamed_data(dense_run, name):
    ref = dense.train(name)
    for rank in range(WORLD):
        got = torch.load(dense_run / f"{name}-rank{rank}.pt", weights_only=True)
        assert got.keys() == ref.keys()
        for k in ref:
            if ref[k].is_floating_point():
                err = (got[k] - ref[k]).abs().max().item() if ref[k].numel() else 0.0
                assert err <= 1e-5, f"{name} rank {rank}: {k} differs by {err:.3g}"
