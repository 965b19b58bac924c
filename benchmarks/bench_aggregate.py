"""Time of one PCGrad / GradVac aggregation on synthetic per-task gradients (CPU).

MovieLens-sized by default: 18 tasks, 913k shared parameters (the MMoE of
``benchmarks/bench_movielens.py``). Prints the median seconds of ``pcgrad_aggregate`` and
``gradvac_aggregate`` (whole / 8 groups) over a few repeats.

    .venv/bin/python benchmarks/bench_aggregate.py [--tasks 18] [--params 913000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from causalmtl.methods import gradvac_aggregate, pcgrad_aggregate, random_task_orders


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=18)
    p.add_argument("--params", type=int, default=913_000)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    t, n = args.tasks, args.params
    # correlated gradients with some conflicts: a common direction plus task noise
    grads = 0.3 * torch.randn(1, n, generator=gen) + torch.randn(t, n, generator=gen)
    base, rest = divmod(n, args.groups)
    sizes = [base + (1 if k < rest else 0) for k in range(args.groups)]
    cases = {
        "pcgrad": lambda o: pcgrad_aggregate(grads, o),
        "gradvac(whole)": lambda o: gradvac_aggregate(grads, o, torch.full((t, t, 1), 0.1), [n], 0.01),
        f"gradvac({args.groups} groups)": lambda o: gradvac_aggregate(
            grads, o, torch.full((t, t, args.groups), 0.1), sizes, 0.01),
    }
    print(f"T={t} tasks, P={n} parameters, {args.threads} thread(s), median of {args.repeats}")
    for name, fn in cases.items():
        times = []
        for r in range(args.repeats):
            orders = random_task_orders(t, torch.Generator().manual_seed(r))
            t0 = time.perf_counter()
            fn(orders)
            times.append(time.perf_counter() - t0)
        print(f"{name:<20} {statistics.median(times):8.4f} s")


if __name__ == "__main__":
    main()
