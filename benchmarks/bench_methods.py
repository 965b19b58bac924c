"""Step time of each training method relative to ERM on the same MMoE model and batch (CPU).

Issue 5 targets: PCGrad and GradVac at most 1.8x ERM for 2 tasks and growing no faster than
linearly with T; IRM and VREx at most 1.5x. Per-environment methods get the same rows split
into two environments. Prints the median step time of every method and its ratio to ERM.

    .venv/bin/python benchmarks/bench_methods.py [--steps 60] [--tasks 2 4 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from causalmtl.data.base import Task
from causalmtl.methods import DANN, ERM, IRM, Batch, GradVac, PCGrad, VREx
from causalmtl.nn import MLPEncoder, MMoE, seeded

METHODS = {
    "ERM": (ERM, {}),
    "PCGrad": (PCGrad, {}),
    "PCGrad(vmap)": (PCGrad, {"jacobian": "batched"}),
    "GradVac": (GradVac, {}),
    "GradVac(module)": (GradVac, {"group": "module"}),
    "IRM": (IRM, {}),
    "IRM(autograd)": (IRM, {"penalty": "autograd"}),
    "VREx": (VREx, {}),
    "DANN": (DANN, {}),
}


def make_batch(n: int, d: int, n_tasks: int, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = torch.randint(0, 2, (n, n_tasks), generator=gen).float()
    env = (torch.arange(n) % 2).long()
    return Batch(x, y, env)


def build(name: str, n_tasks: int, batch: Batch, args: argparse.Namespace):
    cls, hp = METHODS[name]
    tasks = tuple(Task(f"t{i}", n_classes=2) for i in range(n_tasks))
    with seeded(0):
        model = MMoE(lambda: MLPEncoder(args.dim, (args.width, args.width)), tasks, n_experts=args.experts)
        method = cls(model, **hp)
    method.configure_optimizer(torch.optim.Adam(method.param_groups(1e-3), lr=1e-3))
    if method.env_protocol == "pooled":
        batches = [batch]
    else:  # the same rows, split into two environments
        batches = [batch.index(batch.env == e) for e in (0, 1)]
    return method, batches


def time_methods(names: list[str], n_tasks: int, args: argparse.Namespace) -> dict[str, float]:
    """Median step time per method; methods are interleaved step by step (rotating order) so
    that load from other processes hits all of them alike."""
    batch = make_batch(args.batch, args.dim, n_tasks)
    built = {n: build(n, n_tasks, batch, args) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.warmup + args.steps):
        order = names[i % len(names):] + names[: i % len(names)]
        for n in order:
            method, batches = built[n]
            t0 = time.perf_counter()
            method.update(batches)
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times[n].append(dt)
    return {n: statistics.median(v) for n, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"MMoE: {args.experts} experts MLP({args.dim}->{args.width}->{args.width}), batch {args.batch}, "
          f"{args.threads} thread(s), median of {args.steps} steps")
    header = f"{'method':<16}" + "".join(f"{'T=' + str(t) + ' ms':>11}{'ratio':>8}" for t in args.tasks)
    print(header)
    names = ["ERM"] + [m for m in args.methods if m != "ERM"]
    per_t = [time_methods(names, t, args) for t in args.tasks]
    results = {n: [r[n] for r in per_t] for n in names}
    erm = results["ERM"]
    for name, ts in results.items():
        row = f"{name:<16}" + "".join(f"{1e3 * v:>11.2f}{v / e:>8.2f}" for v, e in zip(ts, erm))
        print(row)


if __name__ == "__main__":
    main()
