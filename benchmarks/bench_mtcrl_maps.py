"""Cost of MT-CRL's decorrelation (Eq. 1–2) on feature-map modules, 64×64 inputs.

MTCRLNet with a SegNet trunk split into K channel groups (the modules, ``(B, d/K, 64, 64)``
maps each), routed by A to a segmentation (13 classes), a depth (1 channel) and a normals
(3 channels) head — the NYUv2 task set. Each timed step is one full optimisation step (zero_grad,
forward, masked per-pixel losses, the decorrelation penalty, backward, Adam step) in three
configurations, taken round-robin so that load changes on a shared machine hit each alike:

* ``none``   — no decorrelation (λ_decor = 0);
* ``pooled`` — Pearson correlation over the batch of the spatially averaged module channels
               (N = B samples);
* ``pixels`` — over batch × pixels (N = B·64·64 samples; the project's default).

Prints the median step time of each, the overhead over ``none``, and the time of the penalty
alone (forward + backward on a fixed z).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_mtcrl_maps.py [--batch 8] [--steps 5]
        [--width standard|tiny] [--modules 8] [--threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from causalmtl.data import Task
from causalmtl.methods.mtcrl.regularizers import decorrelation_penalty
from causalmtl.nn import MTCRLNet, SegNet, seeded


def _task(name: str, kind: str, n_classes: int = 0, channels: int = 1) -> Task:
    """A Task of the image contract (``segmentation`` / ``dense`` with ``channels``)."""
    return Task(name, kind, n_classes=n_classes, channels=channels)  # type: ignore[arg-type]


TASKS = (_task("segmentation", "segmentation", 13), _task("depth", "dense", channels=1),
         _task("normal", "dense", channels=3))


def loss_of(outs: list[torch.Tensor], seg: torch.Tensor, depth: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    valid = seg >= 0
    l_seg = -(outs[0].gather(1, seg.clamp(min=0)[:, None])[:, 0] * valid).sum() / valid.sum().clamp(min=1)
    return l_seg + ((outs[1] - depth) ** 2).mean() + ((outs[2] - normal) ** 2).mean()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--width", default="standard", choices=["standard", "tiny"])
    ap.add_argument("--modules", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lambda-decor", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device
    g = torch.Generator().manual_seed(0)
    b, s = args.batch, args.size
    x = torch.randn(b, 3, s, s, generator=g).to(dev)
    seg = torch.randint(-1, 13, (b, s, s), generator=g).to(dev)
    depth = torch.rand(b, 1, s, s, generator=g).to(dev)
    normal = torch.randn(b, 3, s, s, generator=g).to(dev)
    runs = []
    for mode in ("none", "pooled", "pixels"):
        with seeded(0):
            trunk = SegNet(width=args.width)
            model = MTCRLNet(trunk, TASKS, n_modules=args.modules, width=trunk.out_channels).to(dev)
        runs.append((mode, model, torch.optim.Adam(model.parameters(), lr=1e-4)))
    times: dict[str, list[float]] = {m: [] for m, _, _ in runs}
    for step in range(args.warmup + args.steps):
        for mode, model, opt in runs:
            sync(dev)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model.forward_full(x)
            loss = loss_of(out.outputs, seg, depth, normal)
            if mode != "none":
                loss = loss + args.lambda_decor * decorrelation_penalty(out.extra["z"].float(), spatial=mode)
            loss.backward()
            opt.step()
            sync(dev)
            if step >= args.warmup:
                times[mode].append(time.perf_counter() - t0)
    z0 = runs[0][1].encode(x).detach()
    k, m = z0.shape[1], z0.shape[2]
    print(f"MTCRLNet(SegNet {args.width}, d={k * m}, K={k}) on {b}x3x{s}x{s}, device={dev}, "
          f"threads={args.threads}, {args.steps} steps")
    base = statistics.median(times["none"])
    for mode in ("none", "pooled", "pixels"):
        med = statistics.median(times[mode])
        print(f"  step {mode:7s}: {1e3 * med:9.1f} ms  ({100 * (med / base - 1):+5.1f}% vs none)")
    for mode in ("pooled", "pixels"):
        z = z0.clone().requires_grad_(True)
        ts = []
        for _ in range(args.warmup + args.steps):
            sync(dev)
            t0 = time.perf_counter()
            decorrelation_penalty(z, spatial=mode).backward()
            sync(dev)
            ts.append(time.perf_counter() - t0)
        n = b * (s * s if mode == "pixels" else 1)
        print(f"  penalty alone, {mode:6s} (N={n:6d} samples, D={k * m}): "
              f"{1e3 * statistics.median(ts[args.warmup:]):8.2f} ms")


if __name__ == "__main__":
    main()
