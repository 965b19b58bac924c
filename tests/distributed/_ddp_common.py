"""Helpers shared by the data-parallel tests and the processes they spawn (2 ranks, gloo, 127.0.0.1).

Imported by the test module and by ``torch.multiprocessing`` children (spawn). The sweep
experiment ``ddp-toy`` lives in ``_ddp_sweep`` (imported only where a sweep runs, so the
registry of the test session is not polluted at collection time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from causalmtl.data.base import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods import DANN, ERM, IRM, PCGrad, VREx
from causalmtl.methods.gradvac import GradVac
from causalmtl.methods.mtcrl import MTCRL
from causalmtl.nn import MLPEncoder, SharedTrunk, seeded
from causalmtl.nn.mtcrl import MTCRLNet
from causalmtl.train import Trainer

TASKS = (Task("main", n_classes=2), Task("aux", n_classes=3))
EPOCHS_KILLED = 12
METHODS = ("erm", "pcgrad", "gradvac", "irm", "vrex", "dann", "mtcrl")


def _split(n: int, env: int, seed: int, missing: float = 0.25) -> MultiTaskDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.stack([(x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int),
                  np.digitize(x[:, 1] + x[:, 2], [-0.5, 0.5])], 1)
    y[rng.random(n) < missing, 1] = -1  # missing labels: shards differ in label counts
    return MultiTaskDataset(x, y, TASKS, env=np.full(n, env), name=f"s{env}")


def make_splits() -> DatasetSplits:
    """45 train rows (env 0), 30 valid rows (env 1): unequal shards and a short last batch."""
    return DatasetSplits(_split(45, 0, 0), _split(30, 1, 1), _split(20, 2, 2), name="ddp-tiny")


def make_method(name: str):
    with seeded(0):
        if name == "mtcrl":
            model = MTCRLNet(lambda d: MLPEncoder(6, (d,)), TASKS, n_modules=4, width=8)
            return MTCRL(model, lambda_girm=10.0, lambda_decor=0.5, girm="var")
        model = SharedTrunk(MLPEncoder(6, (8,)), TASKS)
        cls = {"erm": ERM, "pcgrad": PCGrad, "gradvac": GradVac, "irm": IRM, "vrex": VREx,
               "dann": DANN}[name]
        hp = {"gradvac": {"beta": 0.5}, "irm": {"lambda": 5.0}, "vrex": {"lambda": 5.0},
              "dann": {"disc_hidden": (4,)}}.get(name, {})
        return cls(model, **hp)


def train(name: str, epochs: int = 2, checkpoint_dir: str | None = None, resume: bool = False,
          batch_size: int = 14, step_sleep: float = 0.0):
    """Train ``name`` on :func:`make_splits` (protocol 'mtcrl': train and valid as environments)."""
    method = make_method(name)
    calls = []
    update = method.update

    def counted(batches):
        calls.append(len(batches[0]))
        if step_sleep:  # slow enough for the test to kill it mid-run
            time.sleep(step_sleep)
        return update(batches)

    method.update = counted
    trainer = Trainer(method, epochs=epochs, batch_size=batch_size, lr=1e-2, protocol="mtcrl", seed=3,
                      checkpoint_dir=checkpoint_dir)
    result = trainer.fit(make_splits(), resume=resume)
    return method, result, calls


def weights(method) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}


def gloo_threads() -> list[str]:
    """Names of this process's gloo / c10d threads (Linux ``/proc``)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                name = fh.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith(("pt_gloo", "gloo")):
            names.append(name)
    return sorted(names)


# --- process entry points --------------------------------------------------------------------
def init_env(rank: int, world: int, port: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)


def rank_main(rank: int, world: int, port: int, out: str, job: str) -> None:
    """What one spawned rank does; writes its observations under ``out``."""
    import torch.distributed as dist

    init_env(rank, world, port)
    out_dir = Path(out)
    from causalmtl.train.trainer import Trainer as T

    orig_save = T._save

    def spy_save(self, path, state, *args, **kwargs):  # who writes checkpoints, and which epochs
        with open(out_dir / f"saves-rank{rank}.txt", "a") as fh:
            fh.write(f"{state['epoch']}\n")
        return orig_save(self, path, state, *args, **kwargs)

    T._save = spy_save
    try:
        if job == "methods":
            for name in METHODS:
                method, _, _ = train(name, checkpoint_dir=str(out_dir / f"ckpt-{name}"))
                torch.save(weights(method), out_dir / f"{name}-rank{rank}.pt")
            import _ddp_sweep  # noqa: F401  (registers ddp-toy)

            from causalmtl.experiments.launchers import launch  # then a sweep, in the same group

            summary = launch("local", "ddp-toy", out=str(out_dir / "runs"))
            (out_dir / f"sweep-rank{rank}.txt").write_text(f"{os.getpid()} {summary.counts.get('done', 0)}\n")
        elif job == "killed":
            train("erm", epochs=EPOCHS_KILLED, checkpoint_dir=str(out_dir / "ckpt"), step_sleep=0.05)
        elif job == "resume":
            method, result, calls = train("erm", epochs=EPOCHS_KILLED, checkpoint_dir=str(out_dir / "ckpt"),
                                          resume=True)
            torch.save({"weights": weights(method), "steps": len(calls), "epochs": len(result.history)},
                       out_dir / f"resume-rank{rank}.pt")
        elif job == "teardown":  # the group is freed by destroy_process_group, its threads joined
            train("erm", epochs=1)
            dist.barrier()
            dist.destroy_process_group()
            (out_dir / f"threads-rank{rank}.txt").write_text("\n".join(gloo_threads()))
            return
        else:
            raise ValueError(f"unknown job {job!r}")
        # both ranks finish every collective before either tears the group down: a rank that
        # destroyed its gloo group while the other was still in the last broadcast aborted
        # (SIGABRT, "terminate called without an active exception") about one suite run in three
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
