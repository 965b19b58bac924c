"""The `movielens` and `yeast-gmtl` experiments at a tiny size, end to end, on files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _tiny_movielens(d: Path, seed: int = 0, n: int = 900) -> Path:
    rng = np.random.default_rng(seed)
    genres = ["Comedy", "Action", "Drama"]
    words = ["love", "war", "night", "club", "die", "pink", "jungle", "alice", "story", "man"]
    d.mkdir(parents=True)
    lines = ["movieId,title,genres"]
    movie_genres = {}
    for m in range(1, 25):
        g = [genres[m % 3]] + ([genres[(m + 1) % 3]] if m % 4 == 0 else [])
        movie_genres[m] = g
        title = " ".join(rng.choice(words, size=rng.integers(1, 4)))
        lines.append(f"{m},{title} ({1990 + m}),{'|'.join(g)}")
    (d / "movies.csv").write_text("\n".join(lines) + "\n")
    users = rng.integers(1, 30, n)
    movies = rng.integers(1, 25, n)
    # a rating depends on the genre and the user, so there is something to learn
    base = {"Comedy": 3.5, "Action": 2.5, "Drama": 4.0}
    r = np.array([base[movie_genres[m][0]] for m in movies]) + (users % 3 - 1) * 0.5
    r = np.clip(np.round(r * 2) / 2, 0.5, 5.0)
    ts = np.sort(rng.integers(0, 10_000, n))
    rows = [f"{u},{m},{v:.1f},{t}" for u, m, v, t in zip(users, movies, r, ts)]
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return d


def test_movielens_experiment_tiny(tmp_path: Path) -> None:
    from causalmtl.experiments import build_report, run_experiment
    from causalmtl.experiments.store import ResultStore

    data = _tiny_movielens(tmp_path / "ml")
    out = tmp_path / "runs"
    summary = run_experiment(
        "movielens",
        [
            f"data.path={data}",
            "data.genres=[Comedy,Action,Drama]",
            "data.min_word_count=1",
            "methods=[stl,mtl,pcgrad,gradvac,dann,irm,mtcrl]",
            "case_genre=Comedy",
            "min_word_occurrences=1",
        ],  # fmt: skip
        preset="tiny",
        seeds=1,
        out=out,
    )
    assert summary.counts == {"done": 7}, summary
    with ResultStore(out / "results.sqlite") as store:
        frame = store.metrics_frame("movielens", summary.config_hash)
    test = frame[(frame["name"] == "mse") & (frame["split"] == "test")]
    assert sorted(set(test["task"])) == ["Action", "Comedy", "Drama"]
    assert set(test["method"]) == {"stl", "mtl", "pcgrad", "gradvac", "dann", "irm", "mtcrl"}
    assert np.isfinite(test["value"]).all() and (test["value"] >= 0).all()
    # the average is the mean of the per-genre MSEs
    for m in ("mtl", "mtcrl"):
        avg = frame[
            (frame["name"] == "mse_avg") & (frame["split"] == "test") & (frame["method"] == m)
        ]["value"]
        assert float(avg.iloc[0]) == pytest.approx(test[test["method"] == m]["value"].mean())
    paths = build_report(out)
    md = paths["markdown"].read_text()
    assert "Avg. MSE" in md and "Relative improvement over vanilla MTL" in md
    assert "Case study" in md and "failed" not in md


def test_title_word_attribution_matches_encoder_and_finite_differences() -> None:
    import torch

    from causalmtl.experiments.builtin.movielens import title_word_attribution
    from causalmtl.nn import EmbeddingEncoder

    torch.manual_seed(0)
    enc = EmbeddingEncoder({"user": 5, "movie": 4, "title": 7}, dim=3, hidden=(6, 4)).double()
    x = {"user": torch.tensor([1, 2, 3]), "movie": torch.tensor([1, 3, 2]),
         "title": torch.tensor([[2, 3, 0], [4, 0, 0], [5, 6, 2]])}  # fmt: skip
    v = torch.randn(3, 4, dtype=torch.float64)
    scores, z = title_word_attribution(enc, x, v)
    scores = scores.detach()
    # the re-written forward is the encoder's own
    torch.testing.assert_close(z, enc(x))
    assert float(scores[0, 2]) == 0.0 and float(scores[1, 1]) == 0.0  # padding scores 0
    # gradient x input of one occurrence by central differences along its own embedding e:
    # d/ds f(E with e -> (1+s) e) at s = 0 equals <grad, e>
    row, pos = 2, 1
    wid = int(x["title"][row, pos])
    w = enc[0].bags["title"].weight

    def f(scale: float) -> float:
        with torch.no_grad():
            fe = enc[0]
            ids = x["title"]
            emb = w[ids].clone()
            emb[row, pos] *= scale
            mask = (ids != 0).double()
            title = (emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            parts = [
                fe.bags["user"](x["user"][:, None]),
                fe.bags["movie"](x["movie"][:, None]),
                title,
            ]
            return float((torch.nn.Sequential(*list(enc)[1:])(torch.cat(parts, 1)) * v).sum())

    h = 1e-6
    fd = (f(1 + h) - f(1 - h)) / (2 * h)
    assert wid == 6
    assert float(scores[row, pos]) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def _tiny_yeast(path: Path, n: int = 240, seed: int = 0) -> Path:
    """A Yeast-format CSV whose labels depend on the features and on each other."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 103))
    u = rng.random(n) < 0.5  # a confounder shared by the labels
    y = np.zeros((n, 14), dtype=np.int64)
    for j in range(14):
        y[:, j] = ((x[:, j] + 1.5 * u + rng.normal(scale=0.7, size=n)) > 0.75).astype(np.int64)
    header = ",".join([f"Att{i}" for i in range(1, 104)] + [f"Class{i}" for i in range(1, 15)])
    rows = [",".join([*(f"{v:.5f}" for v in xr), *(str(v) for v in yr)]) for xr, yr in zip(x, y)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_yeast_gmtl_experiment_tiny(tmp_path: Path) -> None:
    from causalmtl.experiments import build_report, run_experiment
    from causalmtl.experiments.store import ResultStore

    f = _tiny_yeast(tmp_path / "yeast.csv")
    out = tmp_path / "runs"
    summary = run_experiment("yeast-gmtl", [f"path={f}"], preset="tiny", seeds=1, out=out)
    # 2 label sets x 2 models
    assert summary.counts == {"done": 4}, summary
    with ResultStore(out / "results.sqlite") as store:
        frame = store.metrics_frame("yeast-gmtl", summary.config_hash)
    acc = frame[frame["name"] == "acc_id_dmtl"]
    # one row per (model, label set, task): 2 models x (2 + 3) tasks
    assert len(acc) == 10 and acc["value"].between(0, 1).all()
    alpha = frame[frame["name"] == "alpha_selected"]["value"]
    assert set(alpha).issubset({0.0, 0.5, 1.0})
    # the oracle-optimal alpha is never worse than DMTL: gains are >= 0
    assert (frame[frame["name"] == "gmtl_gain_mean"]["value"] >= -1e-12).all()
    md = build_report(out)["markdown"].read_text()
    assert "yeast-gmtl" in md and "optimal α" in md and "failed" not in md


def test_yeast_gmtl_bad_label_set(tmp_path: Path) -> None:
    from causalmtl.experiments import run_experiment

    with pytest.raises(ValueError, match=r"label_sets entry 'Class1\+Class99'.*valid labels"):
        run_experiment("yeast-gmtl", ["label_sets=[Class1+Class99]"], out=tmp_path / "runs")


def test_experiments_report_absent_data(tmp_path: Path) -> None:
    from causalmtl.experiments import MissingDataError, run_experiment

    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(MissingDataError, match=r"ratings.*grouplens"):
        run_experiment("movielens", [f"data.path={empty}"], out=tmp_path / "runs")
    with pytest.raises(MissingDataError, match=r"yeast\.csv\.gz.*Mulan"):
        run_experiment("yeast-gmtl", [f"path={empty}"], out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing started
