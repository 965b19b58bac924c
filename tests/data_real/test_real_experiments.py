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
    from causalmtl.experiments import run_experiment
    from causalmtl.experiments.store import ResultStore
    from causalmtl.report import build_report

    data = _tiny_movielens(tmp_path / "ml")
    out = tmp_path / "runs"
    summary = run_experiment(
        "movielens",
        [
            f"data.path={data}",
            "data.genres=[Comedy,Action,Drama]",
            "data.min_word_count=1",
            "methods=[stl,mtl,irm,mtcrl]",
            "case_genre=Comedy",
            "min_word_occurrences=1",
        ],  # fmt: skip
        preset="tiny",
        seeds=1,
        out=out,
    )
    assert summary.counts == {"done": 4}, summary
    with ResultStore(out / "results.sqlite") as store:
        frame = store.metrics_frame("movielens", summary.config_hash)
    test = frame[(frame["name"] == "mse") & (frame["split"] == "test")]
    assert sorted(set(test["task"])) == ["Action", "Comedy", "Drama"]
    assert set(test["method"]) == {"stl", "mtl", "irm", "mtcrl"}
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

    from causalmtl.experiments.movielens import title_word_attribution
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
