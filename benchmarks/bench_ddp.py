"""Data-parallel throughput: 1 vs 2 processes (gloo, CPU) for the quickstart-sized models.

Trains the quickstart's default Multi-Digits model (``DigitsConfig()``: 6000 train / 1500
valid rows of 8x16 pixels, batch 128, ``ModelConfig()``: MLP 128-64) with the Trainer,
unchanged, in one process and in ``W`` processes spawned as ``torchrun`` would start them
(``RANK``/``WORLD_SIZE``/``MASTER_*`` on 127.0.0.1, gloo), one torch thread per process.
Prints training examples per second (rows of all environments that went through
``method.update``, summed over processes, divided by the slowest process's time for epochs
2..E, validation included; epoch 1 pays one-off costs), the speed-up, and the median latency
of one small ``all_reduce``.

    .venv/bin/python benchmarks/bench_ddp.py                      # mtl (MMoE + ERM), mtcrl
    .venv/bin/python benchmarks/bench_ddp.py --methods pcgrad --epochs 3 --world 1 2 4

On a GPU machine: ``--device cuda`` (nccl; one GPU per process, so ``W`` <= GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(rank: int, world: int, port: int, method_name: str, epochs: int, device: str, out: str) -> None:
    if world > 1:
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                           "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    from causalmtl.experiments.common import (
        DigitsConfig,
        ModelConfig,
        build_method,
        build_model,
        make_digits,
        method_def,
        protocol_for,
    )
    from causalmtl.train import Trainer

    proto = protocol_for(method_name, "split")
    splits = make_digits(DigitsConfig(), "pairs" if proto == "mtcrl" else "biased", seed=0)
    mdef = method_def(method_name)
    model = build_model(mdef.arch, splits.train, ModelConfig(), seed=0)
    method = build_method(mdef.method, model, dict(mdef.fixed))
    rows = []
    update = method.update

    def counted(batches):
        rows.append(sum(len(b) for b in batches))
        return update(batches)

    method.update = counted
    trainer = Trainer(method, epochs=epochs, batch_size=128, lr=1e-3, protocol=proto, device=device, seed=0)
    res = trainer.fit(splits)
    # epoch 1 pays one-off costs (torch._dynamo is imported by the optimiser, first-touch
    # allocations); the figures use the later epochs, each of which sees the same rows
    per_epoch = sum(rows) / epochs
    seconds = float(res.history["time_s"].iloc[1:].sum())
    rows = [per_epoch * (epochs - 1)]
    latency = float("nan")
    if world > 1:  # what one small collective costs here (a step makes 2 to 7 of them)
        import torch.distributed as dist

        x = torch.zeros(64, device=trainer.device)
        times = []
        for _ in range(100):
            t1 = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t1)
        latency = sorted(times)[len(times) // 2]
        dist.destroy_process_group()
    Path(out, f"{rank}.json").write_text(json.dumps({"rows": sum(rows), "seconds": seconds, "latency": latency}))


def measure(method_name: str, world: int, epochs: int, device: str) -> tuple[float, float, float]:
    """(examples/s, seconds, median all_reduce latency in s) of one run with ``world`` processes."""
    with tempfile.TemporaryDirectory() as out:
        args = (world, _free_port(), method_name, epochs, device, out)
        if world == 1:
            _rank(0, *args)
        else:
            mp.spawn(_rank, args=args, nprocs=world, join=True)
        res = [json.loads(Path(out, f"{r}.json").read_text()) for r in range(world)]
    seconds = max(r["seconds"] for r in res)
    return sum(r["rows"] for r in res) / seconds, seconds, res[0]["latency"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["mtl", "mtcrl"])
    ap.add_argument("--world", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.epochs < 2:
        ap.error(f"--epochs must be >= 2 (the first epoch is not timed), got {a.epochs}")
    print(f"# data-parallel throughput, quickstart-sized models, {a.epochs} epochs (first untimed), device {a.device}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'method':<8} {'processes':>9} {'examples/s':>11} {'timed s':>7} {'speed-up':>8} {'all_reduce ms':>13}")
    for m in a.methods:
        base = None
        for w in a.world:
            eps, sec, lat = measure(m, w, a.epochs, a.device)
            base = base or eps
            print(f"{m:<8} {w:>9} {eps:>11.0f} {sec:>7.2f} {eps / base:>8.2f} {1e3 * lat:>13.3f}", flush=True)


if __name__ == "__main__":
    main()
