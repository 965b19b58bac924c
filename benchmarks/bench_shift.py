"""Benchmark of the target-shift evaluation at Taskonomy scale (issue 3).

5 seeds × 90,658 test examples, 100 × 64 classes (K = 6,400 joint classes), 11 α, 1,000 draws
of q, 10 % of main-task labels missing. The data are synthetic but shaped like the real ones:
the prior is smoothed counts of 548,785 training labels drawn from a sparse Dirichlet, so most
of the 6,400 cells share the pseudocount value (ties in p), and predictions are stored in the
GMTL layout (``s={i}/y_pred_{alpha}.pkl`` + a ``torch.save``d log prior).

It measures ``causalmtl shift --gmtl-dir …`` end to end in a child process (reading the
pickles, sampling, τ, importance sampling, analysis, CSV/JSON and both figures): wall time,
draws per second and the child's peak resident memory (targets: < 60 s, < 2 GB). Then it
times the three stages separately in this process on a subset of draws.

Usage: ``.venv/bin/python benchmarks/bench_shift.py [--draws 1000] [--seeds 5] [--n 90658]``
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHAS = [f"{a / 10:.1f}" for a in range(1, 11)]  # 0.1 … 1.0; α = 0 is y_pred_None


def make_layout(root: Path, n: int, seeds: int, rng: np.random.Generator) -> None:
    import torch

    C0, C1 = 100, 64
    K = C0 * C1
    p_true = rng.dirichlet(np.full(K, 0.05))
    counts = np.bincount(rng.choice(K, size=548_785, p=p_true), minlength=K)
    p = (counts + 1.0) / (counts.sum() + K)  # pseudocount 1: many tied cells
    torch.save(torch.tensor(np.log(p)), root / "log_prior.pt")
    flat = rng.choice(K, size=n, p=p)
    labels = np.stack(np.unravel_index(flat, (C0, C1)), axis=1).astype(np.int64)
    labels[rng.random(n) < 0.10, 0] = -1  # 10 % of main-task labels missing
    common = p[flat] > np.median(p[flat])
    for s in range(seeds):
        d = root / f"s={s}"
        d.mkdir()
        u = rng.random(n)
        for name, a in [("None", 0.0), *[(x, float(x)) for x in ALPHAS]]:
            right = np.where(common, u < 0.8 - 0.3 * a * a, u < 0.3 + 0.4 * a)
            main = np.where(right, np.maximum(labels[:, 0], 0), rng.integers(0, C0, n))
            aux = np.where(u < 0.5, labels[:, 1], rng.integers(0, C1, n))
            pred = np.stack([main, aux], axis=1).astype(np.int64)
            with open(d / f"y_pred_{name}.pkl", "wb") as fh:
                pickle.dump((labels, pred), fh)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n", type=int, default=90_658, help="test examples per seed")
    ap.add_argument("--stage-draws", type=int, default=200, help="draws for the per-stage timing")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_layout(root, args.n, args.seeds, rng)
        print(f"data: {args.seeds} seeds x {args.n} examples, K = 6400, 11 alphas "
              f"(written in {time.perf_counter() - t0:.1f} s, not timed below)")  # fmt: skip
        cmd = [
            sys.executable, "-m", "causalmtl.cli", "shift", "--gmtl-dir", str(root),
            "--log-prior", str(root / "log_prior.pt"), "--n-classes", "100", "64",
            "--main-task", "0", "--n-seeds", str(args.seeds), "--alphas", *ALPHAS,
            "--draws", str(args.draws), "--seed", "0", "--out", str(root / "out"), "--no-progress",
        ]  # fmt: skip
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kb, before = r1.ru_maxrss, r0.ru_maxrss
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n")
            return proc.returncode
        print(proc.stdout.strip())
        rows = sum(1 for _ in open(root / "out" / "draws.csv")) - 1
        print(
            f"\nEND TO END (causalmtl shift --gmtl-dir, child process): {wall:.1f} s for {rows} draws "
            f"= {rows / wall:.1f} draws/s; CPU time {cpu:.1f} s; peak RSS {peak_kb / 1024:.0f} MiB"
            + ("" if peak_kb >= before else " (child peak below an earlier child's)")
        )
        with open("/proc/loadavg") as fh:
            print(f"machine load average (1 min) during the run: {fh.read().split()[0]}")
        print(f"targets: < 60 s -> {'OK' if wall < 60 else 'MISSED'}; "
              f"< 2 GB -> {'OK' if peak_kb < 2 * 1024 * 1024 else 'MISSED'}")  # fmt: skip

        # Per-stage timing in this process (same data, fewer draws).
        from causalmtl.shift import (
            ImportanceEstimator,
            correctness,
            load_gmtl_dir,
            sample_q,
            severity,
        )

        t0 = time.perf_counter()
        inputs = load_gmtl_dir(root, root / "log_prior.pt", (100, 64), args.seeds, ALPHAS)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        correct, valid = correctness(inputs.labels, inputs.predictions, (100, 64), task=0)
        est = ImportanceEstimator(inputs.labels, correct, (100, 64), valid)
        t_group = time.perf_counter() - t0
        D = args.stage_draws
        t0 = time.perf_counter()
        q = sample_q(inputs.log_p, D, seed=0)
        t_sample = time.perf_counter() - t0
        t0 = time.perf_counter()
        severity(inputs.log_p, q)
        t_tau = time.perf_counter() - t0
        t0 = time.perf_counter()
        severity(inputs.log_p, q.log_q[:10], method="scipy")
        t_tau_scipy = (time.perf_counter() - t0) / 10
        t0 = time.perf_counter()
        est.estimate(inputs.log_p, q, p_is_log=True)
        t_is = time.perf_counter() - t0
        print(f"\nSTAGES (in process): read pickles {t_load:.2f} s; group {inputs.labels.shape[0]} examples "
              f"into {est.n_patterns} label patterns {t_group:.2f} s")  # fmt: skip
        print(f"  per draw: sample q {1e3 * t_sample / D:.2f} ms, tau (fast) {1e3 * t_tau / D:.2f} ms "
              f"[scipy.stats.weightedtau {1e3 * t_tau_scipy:.1f} ms, x{t_tau_scipy / (t_tau / D):.1f}], "
              f"importance sampling x 11 alphas {1e3 * t_is / D:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
