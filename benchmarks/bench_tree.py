"""GMTL for many tasks: tree decoding speed and full-table decoding at T = 16 (issue 10).

Targets (2-core machine): T = 40 binary tasks, tree prior, 20,000 examples, 11 α —
joint decoding ≥ 100,000 examples/s per α, marginal decoding ≥ 40,000; full-table decoding
at T = 16 within 5 s per 10,000 examples and 256 MB (chunked). Prints examples/s and the
peak resident-memory increase of each call (sampled by a background thread), one run each.

Usage: python benchmarks/bench_tree.py [--threads K] [--device cpu|cuda] [--scaling]
(--threads sets torch's intra-op threads; the default keeps torch's own choice). On the CPU
``gmtl_decode`` runs numpy kernels (single-threaded) unless ``backend="torch"``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from causalmtl.gmtl import TreePrior, gmtl_decode
from causalmtl.gmtl.scaling import measure, scaling_table, simulated_scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--scaling", action="store_true", help="also print the T = 2 … 40 table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, device={args.device}, "
          f"load average {os.getloadavg()[0]:.1f}")
    dev = torch.device(args.device)

    T, N, alphas = 40, 20_000, np.linspace(0, 1, 11)
    prior = TreePrior.random((2,) * T, seed=0, concentration=0.5)
    lp, _ = simulated_scores(prior, N, seed=1)
    lp_dev = [torch.as_tensor(x, device=dev) for x in lp]
    gmtl_decode([x[:100] for x in lp_dev], prior, alpha=alphas)  # warm-up
    for mode, target in (("joint", 100_000), ("marginal", 40_000)):
        def run(mode: str = mode) -> torch.Tensor:
            out = gmtl_decode(lp_dev, prior, alpha=alphas, mode=mode).labels
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out
        _, sec, mb = measure(run)
        rate = N * len(alphas) / sec
        print(f"tree T={T} binary, N={N}, 11 alphas, mode={mode:<8s}: {sec:6.2f} s, "
              f"{rate:10,.0f} examples/s per alpha (target >= {target:,}: "
              f"{'ok' if rate >= target else 'MISSED'}), peak +{mb:.0f} MB")

    T16, N16 = 16, 10_000
    prior16 = TreePrior.random((2,) * T16, seed=1, concentration=0.5)
    joint16 = prior16.to_joint()
    lp16, _ = simulated_scores(prior16, N16, seed=2)
    lp16_dev = [torch.as_tensor(x, device=dev) for x in lp16]
    for label, fn in (
        ("table joint", lambda: gmtl_decode(lp16_dev, joint16, alpha=0.5).labels),
        ("table marginal", lambda: gmtl_decode(lp16_dev, joint16, alpha=0.5, mode="marginal").labels),
        ("table joint, torch kernels", lambda: gmtl_decode(lp16_dev, joint16, alpha=0.5, memory_mb=256,
                                                          backend="torch").labels),
        ("tree joint (same prior)", lambda: gmtl_decode(lp16_dev, prior16, alpha=0.5).labels),
    ):
        out, sec, mb = measure(fn)
        ok = "ok" if sec <= 5 and mb <= 256 else "MISSED"
        print(f"T=16 binary, N={N16}, 1 alpha, {label:<34s}: {sec:6.2f} s, "
              f"{N16 / sec:10,.0f} examples/s, peak +{mb:.0f} MB (target 5 s / 256 MB: {ok})")
    rows = [x[:2000] for x in lp16]
    ref = np.asarray(gmtl_decode([torch.as_tensor(x) for x in rows], joint16, alpha=0.5, backend="torch").labels)
    same = all((np.asarray(gmtl_decode(rows, p, alpha=0.5).labels) == ref).all() for p in (joint16, prior16))
    print(f"torch table, numpy table and tree decoding agree on 2,000 T=16 rows: {bool(same)}")

    if args.scaling:
        print("\nscaling (binary tasks, N=10,000, 11 alphas; examples/s per alpha, peak MB)")
        print(f"{'T':>3s} {'method':>6s} {'mode':>8s} {'seconds':>8s} {'ex/s':>12s} {'peak MB':>8s}")
        for r in scaling_table(n=10_000, max_table_tasks=12):
            print(f"{r['tasks']:3d} {r['method']:>6s} {r['mode']:>8s} {r['seconds']:8.2f} "
                  f"{r['examples_per_s']:12,.0f} {r['peak_mb']:8.0f}")


if __name__ == "__main__":
    main()
