"""Benchmark: EM (``estimate_prior_em``) on small and large problems with 1 and 2 torch threads.

Small EM problems (a few hundred rows × a few joint cells) spent most of their time in
thread hand-offs when torch used 2 threads (issue 15: 25–32 ms instead of < 1 ms).
``estimate_prior_em`` now runs problems of fewer than ``SMALL_EM_CELLS`` (N·K) values with one
torch thread and restores the caller's setting. This script prints the median wall time of
``reps`` calls, per problem size: with 1 torch thread, with 2 threads before the change (the
undecorated function, ``estimate_prior_em.__wrapped__``) and with 2 threads now.

Usage: ``python benchmarks/bench_em_threads.py [--reps 15]`` (one run; medians).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from causalmtl.gmtl import JointPrior, estimate_prior_em

SIZES = [(200, (2, 2)), (1000, (3, 2)), (2000, (2, 2, 2, 2)), (20_000, (4, 4, 4)), (20_000, (80, 80))]


def problem(n: int, n_classes: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, JointPrior]:
    rng = np.random.default_rng(seed)
    K = int(np.prod(n_classes))
    p = rng.dirichlet(np.ones(K))
    y = rng.choice(K, size=n, p=rng.dirichlet(np.ones(K)))
    log_lik = np.log(0.2 + np.eye(K)[y] + 0.3 * rng.random((n, K)))
    return log_lik.reshape((n, *n_classes)), JointPrior.from_probs(p.reshape(n_classes))


def median_ms(n: int, n_classes: tuple[int, ...], threads: int, reps: int, before: bool = False) -> float:
    log_lik, prior = problem(n, n_classes)
    fn = estimate_prior_em.__wrapped__ if before else estimate_prior_em
    torch.set_num_threads(threads)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(log_lik, prior, max_iter=200)
            times.append(time.perf_counter() - t0)
    assert torch.get_num_threads() == threads  # the caller's setting is restored
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    print(f"{'N':>7} {'n_classes':>14} {'N·K':>11} {'1 thread ms':>12} {'2 thr. before ms':>17} {'2 thr. now ms':>14}")
    for n, n_classes in SIZES:
        K = int(np.prod(n_classes))
        reps = args.reps if n * K < 10**6 else max(3, args.reps // 5)
        one = median_ms(n, n_classes, 1, reps)
        before = median_ms(n, n_classes, 2, reps, before=True)
        now = median_ms(n, n_classes, 2, reps)
        print(f"{n:>7} {str(n_classes):>14} {n * K:>11,} {one:>12.2f} {before:>17.2f} {now:>14.2f}")


if __name__ == "__main__":
    main()
