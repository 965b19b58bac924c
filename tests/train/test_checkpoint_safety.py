"""Checkpoints are read with weights_only=True: a planted file never runs code; a corrupted one
is moved aside and the run restarts; partial writes left by a killed process are removed."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from causalmtl.data.base import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods import METHODS
from causalmtl.nn import MLPEncoder, MTCRLNet, SharedTrunk, seeded
from causalmtl.train import Trainer, UnsafeCheckpointError

TASKS = (Task("a", n_classes=2), Task("b", n_classes=3))


def _splits() -> DatasetSplits:
    rng = np.random.default_rng(0)

    def split(n: int, env: int) -> MultiTaskDataset:
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = np.stack([(x[:, 0] > 0).astype(int), np.digitize(x[:, 1], [-0.5, 0.5])], 1)
        return MultiTaskDataset(x, y, TASKS, env=np.full(n, env))

    return DatasetSplits(split(64, 0), split(32, 1), split(32, 2))


def _model():
    with seeded(0):
        return SharedTrunk(MLPEncoder(6, (8,)), TASKS)


class _RunsCode:
    """Unpickling this object would create the file named in ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_checkpoint_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    torch.save({"version": 1, "fingerprint": {}, "state": _RunsCode(str(marker)), "method": {}}, ckpt)
    # the same file *would* run the command under weights_only=False (guard against a vacuous test)
    torch.load(ckpt, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to resume from .*checkpoint\.pt"):
        Trainer(METHODS["erm"](_model()), epochs=1, batch_size=32,
                checkpoint_dir=ckpt.parent).fit(_splits(), resume=True)
    assert not marker.exists()
    assert ckpt.exists()  # left in place for inspection


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", "truncated"])
def test_corrupted_checkpoint_is_moved_aside_and_the_run_restarts(tmp_path, caplog, content):
    splits = _splits()
    kw = dict(epochs=2, batch_size=32, checkpoint_dir=tmp_path)
    ref = Trainer(METHODS["erm"](_model()), **kw).fit(splits)
    ckpt = tmp_path / "checkpoint.pt"
    if content == "truncated":
        content = ckpt.read_bytes()[: ckpt.stat().st_size // 2]
    ckpt.write_bytes(content)
    with pytest.raises(zipfile.BadZipFile):  # really unreadable
        zipfile.ZipFile(ckpt)
    with caplog.at_level("WARNING", logger="causalmtl.train.trainer"):
        res = Trainer(METHODS["erm"](_model()), **kw).fit(splits, resume=True)
    aside = list(tmp_path.glob("checkpoint.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert str(ckpt) in caplog.text and str(aside[0]) in caplog.text
    # restarted from epoch 0: the same numbers as the first run
    assert np.allclose(res.history["valid/loss"], ref.history["valid/loss"])


def test_leftover_partial_writes_are_removed_on_the_next_start(tmp_path):
    left = tmp_path / "checkpoint.pt.abc123.tmp"
    left.write_bytes(b"x" * 1000)
    other = tmp_path / "notes.tmp"
    other.write_bytes(b"keep")
    Trainer(METHODS["erm"](_model()), epochs=1, batch_size=32, checkpoint_dir=tmp_path).fit(_splits())
    assert not left.exists() and other.exists() and (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_resumes_under_weights_only(tmp_path, name):
    """Each method's checkpoint (its extra state included) is plain data that weights_only reads."""
    splits = _splits()
    if name == "mtcrl":
        with seeded(0):
            model = MTCRLNet(lambda d: MLPEncoder(6, (d,)), TASKS, n_modules=2, width=8)
    else:
        model = _model()
    method = METHODS[name](model)
    protocol = "split" if method.env_protocol == "pooled" else "mtcrl"
    first = Trainer(method, epochs=2, batch_size=32, protocol=protocol,
                    checkpoint_dir=tmp_path).fit(splits)
    with open(tmp_path / "checkpoint.pt", "rb") as fh:
        torch.load(fh, weights_only=True)  # raises on anything but tensors and plain data
    # a finished run resumes to its recorded result without training again
    res = Trainer(METHODS[name](model), epochs=2, batch_size=32, protocol=protocol,
                  checkpoint_dir=tmp_path).fit(splits, resume=True)
    assert res.history.equals(first.history) and res.best_epoch == first.best_epoch


def test_pickle_module_is_not_used_for_checkpoints():
    import inspect

    from causalmtl.train import trainer

    src = inspect.getsource(trainer)
    assert "weights_only=False" not in src and "pickle.load" not in src
    assert pickle  # imported for the planted-file helper above


def test_shift_help_warns_that_the_gmtl_layout_is_pickles(capsys):
    from causalmtl.cli import main

    with pytest.raises(SystemExit):
        main(["shift", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "TRUSTED FILES ONLY" in text and "pickles" in text
