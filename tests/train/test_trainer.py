"""The trainer: selection on valid, resume, seeds, protocols, NaN and checkpoint errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from causalmtl.data.base import DatasetSplits, MultiTaskDataset, Task
from causalmtl.methods import ERM, IRM, Batch, GradVac, PCGrad
from causalmtl.nn import MLPEncoder, SharedTrunk, seeded
from causalmtl.train import CheckpointMismatchError, NonFiniteLossError, Trainer, evaluate

TASKS = (Task("main", n_classes=2), Task("aux", n_classes=3))


def _split(n: int, env: int, seed: int, missing: float = 0.2) -> MultiTaskDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.stack([(x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int),
                  np.digitize(x[:, 1], [-0.5, 0.5])], 1)
    y[rng.random(n) < missing, 1] = -1
    return MultiTaskDataset(x, y, TASKS, env=np.full(n, env), name=f"s{env}")


def _splits() -> DatasetSplits:
    return DatasetSplits(_split(96, 0, 0), _split(48, 1, 1), _split(48, 2, 2), name="tiny")


def _model(hidden: int = 8, dropout: float = 0.0) -> SharedTrunk:
    with seeded(0):
        return SharedTrunk(MLPEncoder(6, (hidden,), dropout=dropout), TASKS)


def _weights(method) -> list[torch.Tensor]:
    return [p.detach().clone() for p in method.model.parameters()]


def test_fit_returns_history_and_keeps_best_valid_weights():
    splits = _splits()
    method = ERM(_model())
    res = Trainer(method, epochs=6, batch_size=16, lr=2e-2).fit(splits)
    h = res.history
    assert isinstance(h, pd.DataFrame) and list(h["epoch"]) == [1, 2, 3, 4, 5, 6]
    for col in ["train/loss", "valid/loss", "valid/loss/main", "valid/acc/main", "valid/loss/aux", "lr"]:
        assert col in h.columns
    assert res.select == "valid/loss/main"
    assert res.best_epoch == int(h.loc[h["valid/loss/main"].idxmin(), "epoch"])
    # the model holds the best epoch's weights: re-evaluating gives the recorded value
    again = evaluate(method.model, splits.valid)
    assert again["loss/main"] == pytest.approx(res.best_score, rel=1e-6)
    assert h["train/loss"].iloc[-1] < h["train/loss"].iloc[0]


def test_early_stopping_with_patience():
    res = Trainer(ERM(_model()), epochs=10, batch_size=32, patience=2, min_delta=1e9).fit(_splits())
    assert res.stopped_early and len(res.history) == 3 and res.best_epoch == 1


def test_select_must_be_a_validation_metric():
    with pytest.raises(ValueError, match="never test"):
        Trainer(ERM(_model()), select="test/loss")


def test_same_seed_same_numbers_and_global_rng_untouched():
    splits = _splits()
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        m = PCGrad(_model(dropout=0.2))
        res = Trainer(m, epochs=3, batch_size=16, seed=7).fit(splits)
        runs.append((_weights(m), res.history.drop(columns="time_s")))
    assert torch.equal(state, torch.get_rng_state())
    for a, b in zip(runs[0][0], runs[1][0]):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])
    m = PCGrad(_model(dropout=0.2))
    Trainer(m, epochs=3, batch_size=16, seed=8).fit(splits)
    assert not all(torch.equal(a, b) for a, b in zip(runs[0][0], _weights(m)))


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("cls,cosine", [(PCGrad, False), (GradVac, True)])
def test_resume_after_interruption_reproduces_uninterrupted_weights(tmp_path, cls, cosine):
    splits = _splits()
    kw = dict(epochs=4, batch_size=16, lr=1e-2, seed=3, cosine=cosine, weight_decay=1e-3)
    full = cls(_model(dropout=0.3))
    ref = Trainer(full, checkpoint_dir=tmp_path / "full", **kw).fit(splits)

    broken = cls(_model(dropout=0.3))
    calls = {"n": 0}
    original = broken.update

    def update(batches):
        calls["n"] += 1
        if calls["n"] == 15:  # in the middle of epoch 3 (6 steps per epoch)
            raise _Interrupt
        return original(batches)

    broken.update = update  # type: ignore[method-assign]
    with pytest.raises(_Interrupt):
        Trainer(broken, checkpoint_dir=tmp_path / "run", **kw).fit(splits)

    resumed = cls(_model(hidden=8, dropout=0.3))
    with seeded(99):  # a different initialisation: the checkpoint must overwrite it
        for p in resumed.parameters():
            p.data.normal_()
    res = Trainer(resumed, checkpoint_dir=tmp_path / "run", **kw).fit(splits, resume=True)
    for a, b in zip(_weights(full), _weights(resumed)):
        assert torch.equal(a, b)
    if cls is GradVac:  # the EMA targets travel with the checkpoint
        assert torch.equal(full.targets, resumed.targets) and full.targets.abs().sum() > 0
    pd.testing.assert_frame_equal(ref.history.drop(columns="time_s"), res.history.drop(columns="time_s"))
    assert res.best_epoch == ref.best_epoch
    # a finished run resumes to the same result at once
    again = cls(_model(dropout=0.3))
    Trainer(again, checkpoint_dir=tmp_path / "run", **kw).fit(splits, resume=True)
    for a, b in zip(_weights(full), _weights(again)):
        assert torch.equal(a, b)


def test_resume_with_different_model_or_config_says_what_differs(tmp_path):
    splits = _splits()
    Trainer(ERM(_model()), epochs=1, batch_size=32, checkpoint_dir=tmp_path).fit(splits)
    with pytest.raises(CheckpointMismatchError, match=r"parameters\.encoder\.1\.weight.*\[8, 6\].*\[16, 6\]"):
        Trainer(ERM(_model(hidden=16)), epochs=1, batch_size=32, checkpoint_dir=tmp_path).fit(splits, resume=True)
    with pytest.raises(CheckpointMismatchError, match=r"trainer\.lr: 0\.001 in checkpoint, 0\.01 now"):
        Trainer(ERM(_model()), epochs=1, batch_size=32, lr=1e-2, checkpoint_dir=tmp_path).fit(splits, resume=True)
    with pytest.raises(CheckpointMismatchError, match="method: 'ERM' in checkpoint, 'PCGrad' now"):
        Trainer(PCGrad(_model()), epochs=1, batch_size=32, checkpoint_dir=tmp_path).fit(splits, resume=True)


class _NaNAfter(ERM):
    def objective(self, batches):
        loss, logs = super().objective(batches)
        if self.steps >= 7:
            loss = loss * float("nan")
            logs["loss"] = loss.detach()
        return loss, logs


def test_nan_loss_stops_reports_step_and_keeps_last_good_checkpoint(tmp_path):
    splits = _splits()
    method = _NaNAfter(_model())
    trainer = Trainer(method, epochs=5, batch_size=16, checkpoint_dir=tmp_path)  # 6 steps per epoch
    with pytest.raises(NonFiniteLossError, match="step 8") as info:
        trainer.fit(splits)
    assert info.value.step == 8 and info.value.epoch == 2
    assert info.value.checkpoint == tmp_path / "checkpoint.pt"
    assert all(torch.isfinite(p).all() for p in method.parameters())
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["method"].values() if torch.is_tensor(v) and v.is_floating_point())


def test_task_mismatch_errors():
    splits = _splits()
    other = (Task("main", n_classes=2), Task("aux", kind="regression"))
    with seeded(0):
        reg = SharedTrunk(MLPEncoder(6, (8,)), other)
    with pytest.raises(ValueError, match="task 1 .*'aux'.* is classification but the model's head 1"):
        Trainer(ERM(reg), epochs=1).fit(splits)
    with seeded(0):
        wide = SharedTrunk(MLPEncoder(6, (8,)), (Task("main", n_classes=2), Task("aux", n_classes=2)))
    with pytest.raises(ValueError, match="has 3 classes but the model's head 1"):
        Trainer(ERM(wide), epochs=1).fit(splits)
    with seeded(0):
        one = SharedTrunk(MLPEncoder(6, (8,)), TASKS[:1])
    with pytest.raises(ValueError, match="has 2 tasks .* but the model has 1 heads"):
        Trainer(ERM(one), epochs=1).fit(splits)


def test_environment_errors_and_mtcrl_protocol():
    splits = _splits()
    with pytest.raises(ValueError, match="needs at least 2 environments.*protocol='mtcrl'"):
        Trainer(IRM(_model()), epochs=1).fit(splits)
    with pytest.raises(ValueError, match="environment 5 has no training examples"):
        Trainer(IRM(_model()), epochs=1, environments=[0, 5]).fit(splits)
    res = Trainer(IRM(_model()), epochs=2, batch_size=16, protocol="mtcrl").fit(splits)
    assert "train/penalty" in res.history.columns


class _Spy(ERM):
    seen: list

    def objective(self, batches):
        self.seen.append([b.env.unique().tolist() for b in batches])
        return super().objective(batches)


class _SpyEnv(_Spy):
    env_protocol = "per_env_train_loss"


def test_batches_follow_the_method_protocol():
    splits = _splits()
    pooled = _Spy(_model())
    pooled.seen = []
    Trainer(pooled, epochs=1, batch_size=48, protocol="mtcrl").fit(splits)
    envs = {e for step in pooled.seen for b in step for e in b}
    assert all(len(step) == 1 for step in pooled.seen) and envs == {0, 1}  # train + valid pooled
    per_env = _SpyEnv(_model())
    per_env.seen = []
    Trainer(per_env, epochs=1, batch_size=16, protocol="mtcrl").fit(splits)
    assert all(step == [[0], [1]] for step in per_env.seen)
    assert len(per_env.seen) == 6  # ceil(96 / 16): one pass over the largest environment
    plain = _Spy(_model())
    plain.seen = []
    Trainer(plain, epochs=1, batch_size=48).fit(splits)
    assert {e for step in plain.seen for b in step for e in b} == {0}  # valid never trained on


def test_missing_labels_do_not_contribute_to_the_training_loss():
    base = _split(64, 0, 5, missing=0.5)
    miss = base.targets[:, 1] < 0
    # the aux risk with missing labels equals the aux risk on the labelled rows only
    b = Batch.from_dataset(base)
    model = _model()
    out = model.forward_full(b.x)
    risks = model.task_losses(out, b.y)
    kept = Batch.from_dataset(base.subset(~miss))
    out_kept = model.forward_full(kept.x)
    torch.testing.assert_close(risks[1], model.task_losses(out_kept, kept.y)[1])
    assert np.isnan(b.y[torch.as_tensor(miss), 1].numpy()).all()


def test_bad_trainer_arguments():
    m = ERM(_model())
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        Trainer(m, epochs=0)
    with pytest.raises(ValueError, match="lr must be"):
        Trainer(m, lr=-1.0)
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        Trainer(m, amp=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        Trainer(m, epochs=1).fit(_splits(), resume=True)
    with pytest.raises(ValueError, match="protocol must be"):
        Trainer(m, protocol="pooled")


def test_progress_off_by_default_prints_nothing(capsys):
    Trainer(ERM(_model()), epochs=1, batch_size=48).fit(_splits())
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_dict_inputs_regression_and_progress_bar():
    from causalmtl.nn import EmbeddingEncoder, MMoE

    rng = np.random.default_rng(0)

    def split(n, env):
        user = rng.integers(0, 6, n)
        item = rng.integers(0, 5, n)
        title = rng.integers(0, 9, (n, 3))
        y = np.stack([user * 0.5 + item * 0.1, item * 0.3], 1)
        y[rng.random(n) < 0.3, 1] = np.nan
        return MultiTaskDataset({"user": user, "item": item, "title": title}, y,
                                (Task("r1", kind="regression"), Task("r2", kind="regression")), env=np.full(n, env))

    splits = DatasetSplits(split(64, 0), split(32, 1), split(32, 2))
    vocab = {"user": 6, "item": 5, "title": 9}
    with seeded(0):
        model = MMoE(lambda: EmbeddingEncoder(vocab, 4, (8,)), splits.tasks, n_experts=2,
                     gate_encoder=EmbeddingEncoder(vocab, 2, (4,)))
    res = Trainer(ERM(model), epochs=4, batch_size=16, lr=2e-2, progress=True).fit(splits)
    assert res.history["train/loss"].iloc[-1] < res.history["train/loss"].iloc[0]
    assert "valid/acc/r1" not in res.history.columns


def test_epoch_plan_is_deterministic_and_covers_the_largest_group():
    from causalmtl.train import epoch_plan

    groups = [np.arange(10), np.arange(10, 13)]
    a = epoch_plan(groups, 4, 3, seed=1, epoch=2)
    b = epoch_plan(groups, 4, 3, seed=1, epoch=2)
    assert all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    assert sorted(np.concatenate(a[0]).tolist()) == list(range(10))  # one pass, short last batch
    assert [len(s) for s in a[1]] == [4, 4, 4] and set(np.concatenate(a[1]).tolist()) == {10, 11, 12}
    c = epoch_plan(groups, 4, 3, seed=1, epoch=3)
    assert not np.array_equal(np.concatenate(a[0]), np.concatenate(c[0]))


def test_nps_of_two_trained_stl_networks_feeds_gmtl_decoding():
    from causalmtl.gmtl import JointPrior, gmtl_decode
    from causalmtl.nn import NPS
    from causalmtl.train import predict_log_probs

    splits = _splits()
    members = []
    for t in range(2):
        sub = DatasetSplits(splits.train.select_tasks([t]), splits.valid.select_tasks([t]),
                            splits.test.select_tasks([t]))
        with seeded(t):
            m = SharedTrunk(MLPEncoder(6, (8,)), sub.tasks)
        Trainer(ERM(m), epochs=2, batch_size=32).fit(sub)
        members.append(m)
    nps = NPS(members)
    log_probs = predict_log_probs(nps, splits.test)
    assert [a.shape for a in log_probs] == [(48, 2), (48, 3)]
    prior = JointPrior.fit(splits.train.labels, (2, 3))
    labels = gmtl_decode(log_probs, prior, alpha=0.0).labels
    assert np.array_equal(labels, np.stack([a.argmax(1) for a in log_probs], 1))


def test_uint8_images_train_with_a_cnn():
    from causalmtl.nn import STL, CNNEncoder

    rng = np.random.default_rng(1)

    def split(n, env):
        x = rng.integers(0, 256, (n, 6, 5)).astype(np.uint8)
        y = np.stack([(x[:, :3].mean((1, 2)) > 127).astype(int), (x[:, 3:].mean((1, 2)) > 127).astype(int)], 1)
        return MultiTaskDataset(x, y, (Task("top", n_classes=2), Task("bottom", n_classes=2)), env=np.full(n, env))

    splits = DatasetSplits(split(48, 0), split(24, 1), split(24, 2))
    with seeded(0):
        model = STL(lambda: CNNEncoder(1, (4,), out_dim=4), splits.tasks)
    res = Trainer(ERM(model), epochs=3, batch_size=16, lr=1e-2).fit(splits)
    assert np.isfinite(res.history["train/loss"]).all()


def test_accuracy_selection_is_maximised():
    res = Trainer(ERM(_model()), epochs=4, batch_size=16, lr=2e-2, select="valid/acc/main").fit(_splits())
    h = res.history
    assert res.best_score == pytest.approx(h["valid/acc/main"].max())
    assert res.best_epoch == int(h.loc[h["valid/acc/main"].idxmax(), "epoch"])


def test_unknown_select_metric_and_dann_environment_count():
    from causalmtl.methods import DANN

    with pytest.raises(ValueError, match="select='valid/f1' is not a validation metric"):
        Trainer(ERM(_model()), epochs=1, select="valid/f1").fit(_splits())
    with pytest.raises(ValueError, match="n_environments=3 but the training data has 2 environments"):
        Trainer(DANN(_model(), n_environments=3), epochs=1, protocol="mtcrl").fit(_splits())
