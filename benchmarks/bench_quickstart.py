"""Benchmark: `causalmtl run` (quickstart) at its default size — wall time and peak memory.

Target (issue 7): under 5 minutes and 2 GB on a 2-core machine. Runs the experiment from
scratch in a temporary output directory (one seed, one worker, the report included) and prints
the wall time, the per-run times recorded in the database and the peak resident memory.

    .venv/bin/python benchmarks/bench_quickstart.py [--set key=value ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], help="config overrides")
    parser.add_argument("--keep", default=None, help="write into this directory instead of a temporary one")
    args = parser.parse_args()

    from causalmtl.experiments import build_report, run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        t0 = time.perf_counter()
        summary = run_experiment("quickstart", args.overrides, out=out)
        t_runs = time.perf_counter() - t0
        build_report(out)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        con = sqlite3.connect(out / "results.sqlite")
        rows = con.execute("SELECT run_key, duration FROM runs WHERE experiment='quickstart' ORDER BY id").fetchall()
        print(f"quickstart (default size, 1 seed): {summary.counts}")
        for key, dur in rows:
            print(f"  {key:<28s} {dur:7.1f} s")
        print(f"runs: {t_runs:.1f} s; report: {wall - t_runs:.1f} s")
        print(f"wall time: {wall:.1f} s ({wall / 60:.2f} min; target < 5 min) -> {'OK' if wall < 300 else 'OVER'}")
        print(f"peak memory (max RSS): {peak_mb:.0f} MB (target < 2048 MB) -> {'OK' if peak_mb < 2048 else 'OVER'}")
    return 0 if summary.complete else 1


if __name__ == "__main__":
    sys.exit(main())
