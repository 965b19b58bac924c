"""nyuv2 / cityscapes / taskonomy (MT-CRL Tables 8, 9, 10, 2) end to end at their tiny presets."""

import json
import sqlite3

import numpy as np
import pytest

from causalmtl.experiments import build_report, registry, run_experiment
from causalmtl.experiments.builtin.dense_benchmarks import (
    DEFAULT_METHODS,
    NOT_COMPARABLE,
    _relative,
)
from causalmtl.metrics.direction import metric_direction

#: per experiment: the paper table, one paper number it must quote, and test metrics per task
EXPECT = {
    "nyuv2": ("Table 9", "19.810", {"segmentation": {"miou", "pix_acc"}, "depth": {"abs_err", "rel_err"},
                                   "normal": {"mean_angle", "median_angle", "within_11.25", "within_22.5",
                                              "within_30"}}),
    "cityscapes": ("Table 10", "53.120", {"segmentation": {"miou", "pix_acc"}, "depth": {"abs_err", "rel_err"}}),
    "taskonomy": ("Table 8", "3.010", {"object": {"loss"}, "scene": {"loss"}, "segment_semantic": {"loss"},
                                       "principal_curvature": {"loss"}, "normal": {"loss"},
                                       "edge_occlusion": {"loss"}, "keypoints2d": {"loss"}, "keypoints3d": {"loss"}}),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_tiny_preset_end_to_end(name, tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    exp = registry.get(name)
    assert exp.config_cls().methods == DEFAULT_METHODS and "paper" in exp.presets
    summary = run_experiment(name, preset="tiny", out=tmp_path)
    assert summary.complete and summary.counts == {"done": len(DEFAULT_METHODS)}, summary
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert {m for (m,) in con.execute("SELECT DISTINCT method FROM runs WHERE status='done'")} == set(DEFAULT_METHODS)
    table, number, per_task = EXPECT[name]
    for method in DEFAULT_METHODS:
        got = {}
        for task, metric, value in con.execute(
                "SELECT m.task, m.name, m.value FROM metrics m JOIN runs r ON m.run_id = r.id "
                "WHERE r.method = ? AND m.split = 'test'", (method,)):
            got.setdefault(task, {})[metric] = value
        for task, metrics in per_task.items():
            assert metrics <= set(got.get(task, {})), (method, task, got.get(task))
            assert all(np.isfinite(got[task][m]) for m in metrics), (method, task, got[task])
    infos = [json.loads(p.read_text()) for p in (tmp_path / "artefacts").rglob("info.json")]
    assert len(infos) == len(DEFAULT_METHODS) and all(i["synthetic"] is True for i in infos)
    assert not list((tmp_path / "artefacts").rglob("synthetic-data"))  # the synthetic copy is removed
    build_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert f"id='{name}'" in html and "The report of" not in html
    for text in (table, number, "Table 2", NOT_COMPARABLE, "hard parameter sharing"):
        assert text in html, (name, text)


def test_table2_measure_is_the_mean_relative_improvement_of_one_metric_per_task():
    import pandas as pd

    # two seeds, two tasks (miou up, rel_err down), hand computed
    rows = []
    for seed, (b_iou, b_rel, o_iou, o_rel) in enumerate([(0.2, 0.5, 0.3, 0.4), (0.4, 1.0, 0.2, 1.5)]):
        rows += [("mtl", seed, "miou", "seg", b_iou), ("mtl", seed, "rel_err", "depth", b_rel),
                 ("x", seed, "miou", "seg", o_iou), ("x", seed, "rel_err", "depth", o_rel),
                 ("x", seed, "miou", "seg", 99.0)]  # a valid-split row must not count
    frame = pd.DataFrame(rows, columns=["method", "seed", "name", "task", "value"])
    frame["split"] = ["valid" if v == 99.0 else "test" for v in frame["value"]]
    rel = _relative(frame, ["x"], {"seg": "miou", "depth": "rel_err"})["x"]
    assert metric_direction("miou") == 1 and metric_direction("rel_err") == -1
    expected = [((0.3 - 0.2) / 0.2 + (0.5 - 0.4) / 0.5) / 2, ((0.2 - 0.4) / 0.4 + (1.0 - 1.5) / 1.0) / 2]
    np.testing.assert_allclose(rel.to_numpy(), expected)


@pytest.mark.parametrize("name", ["nyuv2", "taskonomy"])
def test_missing_data_directory_in_the_clis_words(name, tmp_path, monkeypatch, capsys):
    from causalmtl.cli import main

    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    assert main(["run", name, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "causalmtl run: error:" in err and "--set data_dir=..." in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(registry.MissingDataError, match="nothing"):
        run_experiment(name, ["data_dir=" + str(tmp_path / "nothing")], out=tmp_path / "o2")


def test_paper_presets_plan_and_trainer_settings_reach_the_trainer(tmp_path, monkeypatch):
    from causalmtl.experiments.runner import resolve_config
    from causalmtl.train import trainer as trainer_mod

    for name in EXPECT:
        exp = registry.get(name)
        cfg = resolve_config(exp, [], "paper")
        assert cfg.train.amp and cfg.train.channels_last and cfg.train.num_workers > 0
        assert [s.method for s in exp.plan(cfg)] == DEFAULT_METHODS
    assert resolve_config(registry.get("taskonomy"), [], "paper").model.decoder == "taskonomy"

    seen = []

    class Stop(Exception):
        pass

    def fit(self, *args, **kwargs):
        seen.append((self.channels_last, self.compile, self.amp))
        raise Stop("stop after construction")

    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    run_experiment("nyuv2", ["methods=[mtl]", "train.channels_last=true", "train.amp=true"], preset="tiny",
                   out=tmp_path)
    assert seen == [(True, False, False)]  # amp needs CUDA: switched off on the CPU (recorded in info)
