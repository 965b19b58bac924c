"""How GMTL decoding scales with the number of tasks: speed and memory on simulated scores.

:func:`scaling_table` decodes simulated per-task scores of T binary tasks (T = 2 … 40) with a
random tree prior, by full-table decoding (while ``2^T`` fits) and by exact tree decoding
(joint max-product and marginal sum-product), and reports examples per second per α and
the peak resident-memory increase during each call. Used by ``benchmarks/bench_tree.py`` and
the ``many-tasks`` experiment.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .decoding.decode import Mode, gmtl_decode
from .priors.tree import TreePrior


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the high-water mark (kilobytes on Linux/BSD)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``) so RSS starts low."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measured increase may read low
        pass


def measure(fn: Callable[[], Any], interval: float = 0.002) -> tuple[Any, float, float]:
    """Run ``fn()`` and return (result, seconds, peak RSS increase in MB).

    Freed heap memory is first returned to the OS (``malloc_trim``), then the resident set
    size is sampled every ``interval`` seconds by a background thread; the increase is the
    peak during the call minus the size just before it.
    """
    _release_free_memory()
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return out, elapsed, (peak[0] - base) / 2**20


def simulated_scores(
    prior: TreePrior, n: int, seed: int | np.random.Generator = 0, strength: float = 2.0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Labels drawn from ``prior`` and per-task log-probabilities of a noisy classifier.

    Each task's logits are ``strength · onehot(y_t) + N(0, 1)``, normalised per task.
    Returns (log_probs: list of T arrays (n, C_t), labels (n, T)).
    """
    rng = np.random.default_rng(seed)
    labels = prior.sample(n, rng)
    out = []
    for t, c in enumerate(prior.n_classes):
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), labels[:, t]] += strength
        out.append(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    return out, labels


def scaling_table(
    tasks: Sequence[int] = (2, 4, 8, 12, 16, 20, 30, 40),
    n: int = 10_000,
    n_alphas: int = 11,
    max_table_tasks: int = 16,
    seed: int = 0,
    memory_mb: float = 256.0,
) -> list[dict[str, Any]]:
    """Examples/s and peak memory of GMTL decoding for T binary tasks.

    For each T: ``method="table"`` (joint, only while ``T <= max_table_tasks``) and
    ``method="tree"`` in ``mode="joint"`` and ``"marginal"``, all with ``n_alphas`` α values
    in one call. ``examples_per_s`` counts examples × α per second (i.e. per α).
    """
    rows: list[dict[str, Any]] = []
    alphas = np.linspace(0.0, 1.0, n_alphas)
    for T in tasks:
        prior = TreePrior.random((2,) * T, seed=seed + T, concentration=0.5)
        lp, _ = simulated_scores(prior, n, seed=seed)
        cases: list[tuple[str, Mode]] = [("tree", "joint"), ("tree", "marginal")]
        if T <= max_table_tasks:
            cases.insert(0, ("table", "joint"))
        for method, mode in cases:
            table_prior: Any = prior.to_joint() if method == "table" else prior
            def run(p: Any = table_prior, m: Mode = mode, lp: list[np.ndarray] = lp) -> np.ndarray:
                return gmtl_decode(lp, p, alpha=alphas, mode=m, memory_mb=memory_mb, normalized=False).labels

            _, sec, mb = measure(run)
            rows.append(
                {
                    "tasks": T,
                    "method": method,
                    "mode": mode,
                    "n": n,
                    "alphas": n_alphas,
                    "seconds": sec,
                    "examples_per_s": n * n_alphas / sec,
                    "peak_mb": mb,
                }
            )
    return rows


__all__ = ["measure", "scaling_table", "simulated_scores"]
