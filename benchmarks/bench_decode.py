"""Taskonomy-sized GMTL decoding: N = 90,658 examples, 100 x 64 classes, 11 alpha values.

Target (issue 2): all of it in under 20 s on a 2-core machine, peak memory under 2 GB.
Prints the time per alpha and the peak resident memory of the process.

    .venv/bin/python benchmarks/bench_decode.py [--n 90658] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch

from causalmtl.gmtl import JointPrior, gmtl_decode


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=90_658)
    ap.add_argument("--classes", type=int, nargs="+", default=[100, 64])
    ap.add_argument("--n-alphas", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-mb", type=float, default=256.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    log_probs = []
    for c in args.classes:
        logits = rng.normal(size=(args.n, c)).astype(np.float64) * 3
        log_probs.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    prior = JointPrior.fit(
        np.stack([rng.integers(0, c, size=200_000) for c in args.classes], axis=1),
        args.classes,
        pseudocount=1.0,
    )
    alphas = np.linspace(0, 1, args.n_alphas)
    base_rss = peak_rss_mb()
    tensors = [torch.as_tensor(x) for x in log_probs]
    medians = {}
    # numpy kernels (numpy in) and torch kernels (CPU tensors, backend="torch"; on a GPU machine
    # pass tensors on the device)
    for name, inputs in (("numpy", log_probs), ("torch", tensors)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = gmtl_decode(inputs, prior, alpha=alphas, memory_mb=args.memory_mb, backend=name).labels
            times.append(time.perf_counter() - t0)
        medians[name] = statistics.median(times)
        print(f"[{name} inputs] total decode time: median {medians[name]:.2f} s over {args.repeats} runs "
              f"(min {min(times):.2f} s), {medians[name] / len(alphas):.3f} s per alpha")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"N={args.n}, classes={args.classes} (K={prior.size}), {len(alphas)} alphas, output {tuple(out.shape)}")
    print(f"numpy path is {medians['torch'] / medians['numpy']:.2f}x faster than the torch path (same run)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (inputs and prior alone: {base_rss:.0f} MB)")
    med = medians["numpy"]
    print(f"target: < 20 s total, < 2048 MB peak -> {'MET' if med < 20 and peak_rss_mb() < 2048 else 'MISSED'}")

if __name__ == "__main__":
    main()
