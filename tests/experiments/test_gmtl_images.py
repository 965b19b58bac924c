"""``gmtl-aop`` and ``gmtl-taskonomy`` end to end at their tiny presets (synthetic copies in the real
layouts), their report sections, and the predictions written in the GMTL authors' layout."""

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from causalmtl.experiments import build_report, registry, run_experiment
from causalmtl.experiments.registry import MissingDataError
from causalmtl.shift.evaluate import evaluate_shift
from causalmtl.shift.files import load_gmtl_dir

SECTIONS = ["In-distribution test accuracy", "α heuristic (GMTL §3.1", "Per-bin optimal α", "-0.847",
            "all runs pooled", "synthetic data: not comparable to the paper", "Figure 3 analogue"]


@pytest.fixture(scope="module", params=["gmtl-aop", "gmtl-taskonomy"])
def tiny_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    summary = run_experiment(request.param, preset="tiny", out=out)
    return request.param, out, summary


def _metrics(out):
    con = sqlite3.connect(out / "results.sqlite")
    frame = pd.read_sql("SELECT r.id AS run_id, r.method, m.name, m.task, m.split, m.value FROM runs r "
                        "JOIN metrics m ON m.run_id = r.id", con)
    con.close()
    return frame


def test_tiny_preset_runs_and_reports(tiny_run):
    name, out, summary = tiny_run
    exp = registry.get(name)
    assert summary.complete and summary.counts == {"done": len(exp.presets["tiny"].get("methods", exp.config_cls().methods))}
    build_report(out)
    html = (out / "report.html").read_text()
    assert f"id='{name}'" in html and "The report of" not in html
    for text in SECTIONS:
        assert text in html, (name, text)
    frame = _metrics(out)
    # every main task of every run has the α heuristic and the shift evaluation
    for key in ("alpha_selected", "acc_shift_dmtl", "acc_shift_selected", "tau_alpha_corr", "acc_id_alpha0"):
        sub = frame[frame["name"] == key]
        assert sub.groupby("run_id")["task"].nunique().eq(2).all() and sub["run_id"].nunique() == summary.counts["done"]
    chosen = frame[frame["name"] == "alpha_selected"]["value"]
    assert chosen.isin([0.0, 0.5, 1.0]).all()
    for run_dir in (out / "artefacts" / name).iterdir():
        info = json.loads((run_dir / "info.json").read_text())
        assert info["synthetic"] is True
        assert not (run_dir / "synthetic-data").exists()  # the synthetic copy is removed after the run
        if name == "gmtl-taskonomy":
            assert info["n_classes"] == [100, 64]


def test_gmtl_layout_reads_back_and_reproduces_the_run(tiny_run):
    """The files under <run>/gmtl are what load_gmtl_dir reads; re-running the shift evaluation on
    them with the run's seed gives the run's own draws, and α = 0's accuracy is the stored metric."""
    name, out, _ = tiny_run
    cfg = registry.get(name).presets["tiny"]
    frame = _metrics(out)
    seed = 0
    for run_dir in sorted((out / "artefacts" / name).iterdir()):
        info = json.loads((run_dir / "info.json").read_text())
        alphas = [a for a in cfg["alphas"] if a != 0.0]
        inp = load_gmtl_dir(run_dir / info["gmtl_dir"], run_dir / info["log_prior"], info["n_classes"], 1, alphas)
        assert inp.predictions.shape == (3, info["sizes"]["test"], 2)
        assert inp.alphas.tolist() == [0.0, *alphas]
        arrays = np.load(run_dir / "arrays.npz")
        run_id = int(run_dir.name)
        for t, task in enumerate(info["tasks"]):
            lab = inp.labels[:, t]
            acc0 = float((inp.predictions[0, :, t] == lab).mean())
            stored = frame[(frame["run_id"] == run_id) & (frame["name"] == "acc_id_alpha0") & (frame["task"] == task)]
            assert acc0 == pytest.approx(float(stored["value"].iloc[0]))
            draws = evaluate_shift(inp.labels, inp.predictions, inp.log_p, inp.alphas, n_classes=inp.n_classes,
                                   task=t, n_draws=cfg["n_draws"], seed=seed)
            np.testing.assert_allclose(draws.tau, arrays[f"tau_{t}"], atol=1e-9)
            np.testing.assert_allclose(draws.accuracy, arrays[f"acc_{t}"], atol=1e-9, equal_nan=True)


def test_shift_cli_reads_a_run_directory(tiny_run, tmp_path):
    from causalmtl.cli import main

    name, out, _ = tiny_run
    run_dir = sorted((out / "artefacts" / name).iterdir())[0]
    info = json.loads((run_dir / "info.json").read_text())
    main(["shift", "--gmtl-dir", str(run_dir / "gmtl"), "--log-prior", str(run_dir / "gmtl" / "log_prior.pt"),
          "--n-classes", *map(str, info["n_classes"]), "--alphas", "0.5", "1.0", "--draws", "10",
          "--out", str(tmp_path / "s"), "--no-figures", "--no-progress"])
    draws = pd.read_csv(tmp_path / "s" / "draws.csv")
    assert len(draws) == 10


def test_bad_configs_and_missing_data(tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(ValueError, match="pairs must be"):
        run_experiment("gmtl-aop", ["pairs=[hat+shorts]"], preset="tiny", out=tmp_path / "a")
    with pytest.raises(ValueError, match="FPS is not run on Taskonomy"):
        run_experiment("gmtl-taskonomy", ["methods=[nps,fps]"], preset="tiny", out=tmp_path / "b")
    with pytest.raises(MissingDataError):
        run_experiment("gmtl-aop", ["synthetic=false"], preset="tiny", out=tmp_path / "c")
    with pytest.raises(MissingDataError):
        run_experiment("gmtl-taskonomy", ["synthetic=false"], preset="tiny", out=tmp_path / "d")


def test_image_encoder_branch_and_resnet_stitch_points():
    import torch

    from causalmtl.data.base import Task
    from causalmtl.experiments.common import (
        ModelConfig,
        encoder_factory,
        is_image_encoder,
        resnet_stitch_points,
    )
    from causalmtl.nn import STL, CrossStitchNetwork

    assert is_image_encoder("resnet50") and is_image_encoder("timm:convnext_tiny") and not is_image_encoder("cnn")
    with pytest.raises(ValueError, match="model.encoder"):
        encoder_factory(ModelConfig(encoder="resnet"), 10)
    enc = encoder_factory(ModelConfig(encoder="resnet18", base_width=4), 3 * 32 * 32, in_channels=3, image_size=(32, 32))
    tasks = [Task("a", "classification", 2), Task("b", "classification", 3)]
    stl = STL(enc, tasks)
    assert stl.encoders[0].out_dim == 32  # 8 × base width
    points = resnet_stitch_points(stl.encoders[0])["stitch_after"]
    names = [n for n, _ in stl.encoders[0].named_children()]
    assert [names[i] for i in points] == ["layer1", "layer2", "layer3", "layer4"]
    cs = CrossStitchNetwork.from_stl(stl, init_self=1.0, **resnet_stitch_points(stl.encoders[0]))
    x = torch.randn(2, 3, 32, 32)
    stl.eval(), cs.eval()
    with torch.no_grad():  # identity stitches: the cross-stitch network reproduces the STL outputs
        for a, b in zip(stl(x), cs(x)):
            torch.testing.assert_close(a, b)
    assert resnet_stitch_points(torch.nn.Linear(2, 2)) == {}
