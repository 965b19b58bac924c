"""MT-CRL step time (G-IRM variance form, 2 environments) relative to vanilla MMoE.

Target (issue 6): at most 2.5x the step time of MMoE trained by ERM with the same modules
(K = 8 MLP modules of width 16, total width 128) on the same examples, for T = 2 and T = 8
tasks, CPU, median over steps (taken round-robin). Three timed configurations per T, each one full optimisation
step (zero_grad, forward, backward, Adam step):

* ``mmoe``      — MMoE + ERM on the pooled batch (2 x B rows: train + valid, the baselines'
                  protocol);
* ``mtcrl-nopen``— MTCRLNet + MTCRL without G-IRM on the same pooled 2 x B rows as one
                  environment (same encoder work, decorrelation and graph terms included);
* ``mtcrl-var`` — MTCRLNet + MTCRL with G-IRM-var on 2 environments of B rows each.

Prints the medians, the ratio mtcrl-var / mmoe and the share of the MT-CRL step spent on the
penalty, (mtcrl-var − mtcrl-nopen) / mtcrl-var.

    .venv/bin/python benchmarks/bench_mtcrl.py [--batch 256] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from causalmtl.data import Task
from causalmtl.methods import ERM, Batch
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.nn import MLPEncoder, MMoE, seeded
from causalmtl.nn.mtcrl import MTCRLNet


def make_batches(n_tasks: int, batch: int, in_dim: int, device: str) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    out = []
    for e in range(2):
        x = torch.randn(batch, in_dim, generator=g)
        y = torch.randint(0, 2, (batch, n_tasks), generator=g).float()
        out.append(Batch(x, y, torch.full((batch,), e)).to(device))
    return out


def time_interleaved(runs: list[tuple[object, list[Batch]]], steps: int, warmup: int, device: str) -> list[float]:
    """Median step time of each (method, batches), steps taken round-robin so that load
    changes on a shared machine hit every configuration alike."""
    for method, _ in runs:
        method.configure_optimizer(torch.optim.Adam(method.parameters(), lr=1e-3))
    times: list[list[float]] = [[] for _ in runs]
    for i in range(warmup + steps):
        for j, (method, batches) in enumerate(runs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            logs = method.update(batches)
            float(logs["loss"])  # wait for the step (the host copy a trainer makes anyway)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256, help="rows per environment")
    ap.add_argument("--in-dim", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=128, help="hidden width of each MLP module")
    ap.add_argument("--modules", type=int, default=8)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--tasks", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least noise on a shared machine)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = args.width // args.modules
    print(f"device={args.device} threads={args.threads} K={args.modules} width={args.width} "
          f"module=MLP({args.in_dim}->{args.hidden}->{d}) B={args.batch} per env x 2 envs")
    print(f"{'T':>3} {'mmoe ms':>9} {'nopen ms':>9} {'var ms':>9} {'ratio':>7} {'penalty share':>14}")
    for n_tasks in args.tasks:
        tasks = [Task(f"t{t}", "classification", 2) for t in range(n_tasks)]
        batches = make_batches(n_tasks, args.batch, args.in_dim, args.device)
        pooled = [Batch(torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches]),
                        torch.cat([b.env for b in batches]))]

        def module() -> MLPEncoder:
            return MLPEncoder(args.in_dim, (args.hidden, d))

        with seeded(0):
            mmoe = ERM(MMoE(module, tasks, n_experts=args.modules, gate_in_dim=args.in_dim)).to(args.device)
            nopen = MTCRL(MTCRLNet(lambda _d: module(), tasks, n_modules=args.modules, width=args.width),
                          girm="none").to(args.device)
            var = MTCRL(MTCRLNet(lambda _d: module(), tasks, n_modules=args.modules, width=args.width),
                        girm="var").to(args.device)
        t_mmoe, t_nopen, t_var = time_interleaved(
            [(mmoe, pooled), (nopen, pooled), (var, batches)], args.steps, args.warmup, args.device
        )
        print(f"{n_tasks:>3} {1e3 * t_mmoe:9.2f} {1e3 * t_nopen:9.2f} {1e3 * t_var:9.2f} "
              f"{t_var / t_mmoe:7.2f} {max(0.0, (t_var - t_nopen) / t_var):14.1%}")


if __name__ == "__main__":
    main()
