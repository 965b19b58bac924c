"""Generation time of the synthetic and digit datasets (one run each; prints seconds).

Usage: python benchmarks/bench_data.py [MNIST_DIR]   (MNIST_DIR default: $CAUSALMTL_DATA/mnist
or /work/shared/data/mnist when present).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path


def timed(label: str, fn) -> None:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    sizes = "/".join(str(len(s)) for _, s in out) if hasattr(out, "train") else ""
    print(f"{label:<48s} {dt:7.3f} s  {sizes}")


def main() -> None:
    from causalmtl.data import (
        decision_boundaries,
        make_gaussian_toy,
        make_multi_digits,
        make_multi_mnist,
        make_multi_sem,
    )

    timed("decision_boundaries (41 covariances)", lambda: decision_boundaries())
    timed("gaussian toy 100k/20k/100k", lambda: make_gaussian_toy(100_000, 20_000, 100_000))
    timed("multi-sem T=2 d=5 100k/20k/100k", lambda: make_multi_sem(2, 5, 100_000, 20_000, 100_000))
    timed("multi-sem T=8 d=16 rotated 50k/10k/50k", lambda: make_multi_sem(8, 16, 50_000, 10_000, 50_000, rotate=True))
    timed("multi-digits biased 10k/2k/2k (first call)", lambda: make_multi_digits("biased"))
    timed("multi-digits pairs 100k/20k/20k", lambda: make_multi_digits("pairs", n_train=100_000, n_valid=20_000, n_test=20_000))
    cand = sys.argv[1] if len(sys.argv) > 1 else None
    if cand is None:
        env = os.environ.get("CAUSALMTL_DATA")
        for c in ([Path(env), Path(env) / "mnist"] if env else []) + [Path("/work/shared/data/mnist")]:
            if (c / "t10k-labels-idx1-ubyte.gz").is_file() or (c / "t10k-labels-idx1-ubyte").is_file():
                cand = str(c)
                break
    if cand is None:
        print("multi-mnist: no MNIST directory found (pass one as argument)")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timed("multi-mnist pairs 20k/5k/5k float32", lambda: make_multi_mnist(cand, "pairs"))
        timed("multi-mnist pairs 20k/5k/5k uint8", lambda: make_multi_mnist(cand, "pairs", dtype="uint8"))


if __name__ == "__main__":
    main()
