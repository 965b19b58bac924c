"""Training throughput on NYUv2-sized inputs: images/s, peak memory, host syncs per step.

MTL (hard sharing: a SegNet trunk with three conv heads) and MT-CRL (the same SegNet split
into K = 8 channel groups routed by the graph A, G-IRM var, decorrelation over batch × pixels)
on the NYUv2 task set (13-class segmentation, depth L1, normals cosine), random inputs of
``--size`` (default 288 × 384, NYUv2's preprocessed size). Each method trains through the real
:class:`~causalmtl.train.Trainer` on an in-memory split (one epoch of ``--steps`` steps per
environment; MT-CRL under the §4 protocol with two environments); the reported time is the
median step time of the steps after the first (warm-up), images/s counts every environment's
batch (ERM draws one pooled batch of ``--batch`` rows, MT-CRL one per environment). Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on the
CPU. Host synchronisations per step are counted on CUDA with
``torch.cuda.set_sync_debug_mode("warn")`` (each synchronising call warns once); on the CPU
there is no device to wait for and the column reads n/a.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_dense.py [--size 288 384] [--batch 2]
        [--steps 4] [--width standard|tiny] [--device cpu|cuda] [--amp] [--channels-last]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings

import numpy as np
import torch

from causalmtl.data import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods import ERM
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.nn import MTCRLNet, SegNet, SharedTrunk, seeded
from causalmtl.train import Trainer

TASKS = (Task("segmentation", "segmentation", n_classes=13), Task("depth", "dense", channels=1, loss="l1"),
         Task("normal", "dense", channels=3, loss="cosine"))


def _split(n: int, hw: tuple[int, int], env: int, seed: int) -> MultiTaskDataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, *hw), dtype=np.float32)
    seg = rng.integers(-1, 13, size=(n, *hw))
    depth = rng.random((n, 1, *hw), dtype=np.float32) + 0.5
    normal = rng.normal(size=(n, 3, *hw)).astype(np.float32)
    return MultiTaskDataset(x, np.ones((n, 3)), TASKS, env=np.full(n, env),
                            maps={"segmentation": seg, "depth": depth, "normal": normal})


class _StepTimer:
    def __init__(self, method, device: torch.device) -> None:
        self.times: list[float] = []
        self.syncs: list[int] = []
        self.rows: list[int] = []
        self.device = device
        update = method.update

        def timed(batches):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("warn")
                try:
                    logs = update(batches)
                finally:
                    if device.type == "cuda":
                        torch.cuda.set_sync_debug_mode(0)
                        torch.cuda.synchronize(device)
            self.times.append(time.perf_counter() - t0)
            self.rows.append(sum(len(b) for b in batches))
            self.syncs.append(sum("synchroniz" in str(w.message) for w in caught))
            return logs

        method.update = timed


def run(name: str, args: argparse.Namespace) -> dict[str, float | str]:
    hw = tuple(args.size)
    device = torch.device(args.device)
    n = args.batch * args.steps
    splits = DatasetSplits(_split(n, hw, 0, 0), _split(n, hw, 1, 1), _split(args.batch, hw, 2, 2))
    with seeded(0):
        if name == "MTL":
            method = ERM(SharedTrunk(SegNet(width=args.width), TASKS))
        else:
            method = MTCRL(MTCRLNet(SegNet(width=args.width), TASKS, n_modules=8,
                                    width=SegNet(width=args.width).out_channels), girm="var")
    timer = _StepTimer(method, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    Trainer(method, epochs=1, batch_size=args.batch, protocol="mtcrl", device=device, amp=args.amp,
            channels_last=args.channels_last, eval_batch_size=args.batch).fit(splits)
    step = statistics.median(timer.times[1:] or timer.times)
    rows = statistics.median(timer.rows[1:] or timer.rows)  # ERM pools: one batch; MT-CRL: one per environment
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (GPU)"
        syncs = f"{statistics.median(timer.syncs[1:] or timer.syncs):.0f}"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (RSS so far)"
        syncs = "n/a"
    return {"method": name, "step_s": step, "images_per_s": rows / step, "peak": peak, "syncs": syncs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[288, 384])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--width", default="standard")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"size {args.size[0]}x{args.size[1]}, batch {args.batch} per environment, SegNet width "
          f"{args.width}, device {args.device}, amp {args.amp}, channels_last {args.channels_last}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'method':<8}{'step (s)':>10}{'images/s':>10}  {'peak memory':<26}{'host syncs/step':>16}")
    for name in ("MTL", "MT-CRL"):
        r = run(name, args)
        print(f"{r['method']:<8}{r['step_s']:>10.3f}{r['images_per_s']:>10.2f}  {r['peak']:<26}{r['syncs']:>16}")


if __name__ == "__main__":
    main()
