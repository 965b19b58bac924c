"""The many-tasks experiment end to end on a small fake Yeast table (no real data needed)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from causalmtl.experiments.builtin.many_tasks import (
    ManyTasksConfig,
    decode_families,
    dependence_part,
    plan,
    run,
    summary_table,
)
from causalmtl.experiments.registry import RunContext, get
from causalmtl.gmtl import JointPrior, TreePrior


def fake_yeast(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 103))
    z = x[:, :14] + 0.8 * x[:, [14]]  # a shared factor makes the labels co-occur
    y = (z > 0.3).astype(int)
    header = [f"Att{i}" for i in range(1, 104)] + [f"Class{i}" for i in range(1, 15)]
    file = path / "yeast.csv.gz"
    with gzip.open(file, "wt") as fh:
        fh.write(",".join(header) + "\n")
        for xi, yi in zip(x, y):
            fh.write(",".join(f"{v:.5f}" for v in xi) + "," + ",".join(str(v) for v in yi) + "\n")
    return file


def test_many_tasks_tiny_end_to_end(tmp_path):
    fake_yeast(tmp_path)
    cfg = ManyTasksConfig(path=str(tmp_path), n_labels=[4, 14], alphas=[0.0, 0.5, 1.0], tilts=[0.0, 2.0],
                          n_draws=4, n_bins=2, scaling_tasks=[2, 6], scaling_n=200, scaling_max_table_tasks=4)
    specs = plan(cfg)
    assert [s.run_key for s in specs] == ["labels=4/prior=full", "labels=4/prior=tree", "labels=14/prior=tree", "scaling"]
    ctx = RunContext(run_id=0, seed=0, device="cpu", artefact_dir=tmp_path / "a")
    small = run(cfg, specs[0], ctx)
    assert small.info["prior"] == "JointPrior"
    assert any(m.name == "qacc_dependence_best" for m in small.metrics)
    cfg.n_draws = 0  # the paper's protocol is exercised above; keep the 14-label run fast
    res = run(cfg, specs[2], ctx)
    assert res.info["prior"] == "TreePrior" and len(res.info["edges"]) == 13
    assert res.arrays["acc_single"].shape == (2, 3)
    assert res.arrays["tilt_tau"][0] == pytest.approx(1.0)
    # α = 0 is DMTL in every family
    for fam in ("single", "dependence", "marginal", "single-marg"):
        np.testing.assert_allclose(res.arrays[f"acc_{fam}"][:, 0], res.arrays["acc_single"][:, 0])
    assert "tilt" in summary_table(res, cfg.alphas, cfg.tilts)
    scaling = run(cfg, specs[3], ctx)
    kinds = {(r["tasks"], r["method"], r["mode"]) for r in scaling.info["rows"]}
    assert (2, "table", "joint") in kinds and (6, "tree", "marginal") in kinds and (6, "table", "joint") not in kinds
    assert get("many-tasks").name == "many-tasks"


def test_dependence_part_full_and_tree_agree_for_a_tree_distribution():
    tree = TreePrior.random((2, 2, 3), seed=1)
    y = np.array([[0, 1, 2], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(dependence_part(tree, y), dependence_part(tree.to_joint(), y), atol=1e-12)
    d = dependence_part(tree, y)
    want = sum(tree.pmi(e)[y[:, s], y[:, t]] for e, (s, t) in enumerate(tree.edges))
    np.testing.assert_allclose(d, want, atol=1e-12)


def test_decode_families_zero_alpha_is_dmtl():
    rng = np.random.default_rng(0)
    lp = [np.log(rng.dirichlet([1, 1], size=30)) for _ in range(3)]
    prior = JointPrior.fit(rng.integers(0, 2, size=(50, 3)), (2, 2, 2))
    out = decode_families(lp, prior, [0.0, 1.0])
    dmtl = np.stack([x.argmax(1) for x in lp], 1)
    for pred in out.values():
        np.testing.assert_array_equal(pred[0], dmtl)


def test_bad_config():
    with pytest.raises(ValueError, match=r"n_labels entries must be in \[2, 14\]"):
        plan(ManyTasksConfig(n_labels=[20]))
    with pytest.raises(ValueError, match="priors has unknown"):
        plan(ManyTasksConfig(priors=["chain"]))
