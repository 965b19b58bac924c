"""MovieLens loader on files written here in every public layout, counts checked by hand."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from _shared_data import SHARED_DATA
from causalmtl.data._sources import MissingDataError
from causalmtl.data.movielens import (
    GENRES,
    detect_layout,
    genre_mse,
    load_movielens,
    read_movielens,
    tokenize_title,
)

# ---------------------------------------------------------------------------------------------
# The hand-made table. Movies: id, title, genres (canonical names).
MOVIES = [
    (1, "Toy Story (1995)", ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]),
    (2, "Heat, The (1995)", ["Action", "Crime", "Thriller"]),
    (3, "Nothing (2000)", []),
    (4, "Amélie (2001)", ["Comedy", "Romance"]),
    (5, "Late Movie (2010)", ["Drama"]),
    (6, "Über Action (2012)", ["Action", "Comedy"]),
]
# Ratings (user, movie, whole-star rating, timestamp). With genres = [Comedy, Action] the
# ratings of movies 3 and 5 are dropped before the split (no selected genre): 30 remain,
# split round(24) / round(3) / 3 by time:
#   train t=1..24 (users 1, 2, 3; movies 1, 2, 4)
#   valid t=25 (2, 1) kept; t=26 (9, 2) user 9 unseen -> dropped; t=27 (3, 2) kept
#   test  t=28 (1, 6) movie 6 unseen -> dropped; t=29 (3, 4) kept; t=30 (1, 2) kept
_TRAIN_PAIRS = [(u, m) for u in (1, 2, 3) for m in (1, 2, 4)]  # 9 pairs, repeated
TRAIN = [(*_TRAIN_PAIRS[k % 9], 1 + (k % 5), k + 1) for k in range(24)]
VALID = [(2, 1, 4, 25), (9, 2, 3, 26), (3, 2, 2, 27)]
TEST = [(1, 6, 2, 28), (3, 4, 5, 29), (1, 2, 1, 30)]
DROPPED = [(1, 3, 3, 12), (2, 5, 4, 7)]  # no selected genre
# file order: shuffled by a fixed permutation so the loader must sort by time
RATINGS = [
    r for k, r in sorted(enumerate(TRAIN + VALID + TEST + DROPPED), key=lambda kr: (kr[0] * 7) % 32)
]
assert len(RATINGS) == 32


def _flags100k(genres: list[str]) -> list[str]:
    names = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip
    old = ["Children's" if g == "Children" else g for g in genres]
    if not genres:
        old = ["unknown"]
    return ["1" if n in old else "0" for n in names]


def write_layout(d: Path, layout: str, ratings=RATINGS, movies=MOVIES) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if layout == "ml-latest":
        lines = ["movieId,title,genres"]
        for m, t, g in movies:
            title = f'"{t}"' if "," in t else t
            lines.append(f"{m},{title},{'|'.join(g) if g else '(no genres listed)'}")
        (d / "movies.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        rl = ["userId,movieId,rating,timestamp"] + [
            f"{u},{m},{float(r)},{t}" for u, m, r, t in ratings
        ]
        (d / "ratings.csv").write_text("\n".join(rl) + "\n", encoding="utf-8")
    elif layout == "ml-100k":
        lines = [f"{m}|{t}|01-Jan-1995||http://x|" + "|".join(_flags100k(g)) for m, t, g in movies]
        (d / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
        (d / "u.data").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ratings))
    else:  # ml-1m (Latin-1, Children's, users.dat) or ml-10m (UTF-8)
        old = layout == "ml-1m"
        lines = []
        for m, t, g in movies:
            gg = ["Children's" if (x == "Children" and old) else x for x in g]
            lines.append(f"{m}::{t}::{'|'.join(gg) if gg else '(no genres listed)'}")
        (d / "movies.dat").write_bytes(
            ("\n".join(lines) + "\n").encode("latin-1" if old else "utf-8")
        )
        (d / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ratings))
        if old:
            (d / "users.dat").write_text("1::F::1::10::48067\n")
    return d


LAYOUT_NAMES = ["ml-100k", "ml-1m", "ml-10m", "ml-latest"]


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_layout_hand_counts(tmp_path: Path, layout: str) -> None:
    d = write_layout(tmp_path / layout, layout)
    assert detect_layout(d) == layout
    s = load_movielens(d, genres=["Comedy", "Action"])
    assert s.meta["layout"] == layout
    assert s.train.task_names == ("Comedy", "Action")
    assert all(t.kind == "regression" for t in s.tasks)
    assert (len(s.train), len(s.valid), len(s.test)) == (24, 2, 2)
    assert s.meta["dropped"] == {
        "no_selected_genre": 2,
        "valid_unseen_user_or_movie": 1,
        "test_unseen_user_or_movie": 1,
    }
    assert s.meta["n_users"] == 3 and s.meta["n_movies"] == 3
    np.testing.assert_array_equal(s.meta["user_ids"], [1, 2, 3])
    np.testing.assert_array_equal(s.meta["movie_ids"], [1, 2, 4])
    # encodings: Latin-1 (ml-100k, ml-1m) and UTF-8 (ml-10m, ml-latest) decoded the same
    assert s.meta["titles"] == ["Toy Story (1995)", "Heat, The (1995)", "Amélie (2001)"]
    # rows in time order; valid = t 25, 27; test = t 29, 30
    np.testing.assert_array_equal(s.meta["timestamps"]["train"], np.arange(1, 25))
    np.testing.assert_array_equal(s.meta["timestamps"]["valid"], [25, 27])
    np.testing.assert_array_equal(s.meta["timestamps"]["test"], [29, 30])
    # valid: (2, 1, 4) -> user idx 1, movie idx 0, Comedy only; (3, 2, 2) -> Action only
    np.testing.assert_array_equal(s.valid.inputs["user"], [1, 2])
    np.testing.assert_array_equal(s.valid.inputs["movie"], [0, 1])
    np.testing.assert_array_equal(s.valid.targets, [[4.0, np.nan], [np.nan, 2.0]])
    # test: (3, 4, 5) -> movie idx 2 (Amélie: Comedy); (1, 2, 1) -> Heat: Action
    np.testing.assert_array_equal(s.test.targets, [[5.0, np.nan], [np.nan, 1.0]])
    # train row k is TRAIN[k]
    exp = np.full((24, 2), np.nan)
    for k, (_u, m, r, _t) in enumerate(TRAIN):
        exp[k, 0 if m in (1, 4) else 1] = r
    np.testing.assert_array_equal(s.train.targets, exp)
    np.testing.assert_array_equal(s.train.inputs["user"], [u - 1 for u, *_ in TRAIN])
    np.testing.assert_array_equal(
        s.train.inputs["movie"], [{1: 0, 2: 1, 4: 2}[m] for _, m, *_ in TRAIN]
    )
    # title words: vocabulary by (-count, word), padded with 0
    assert s.meta["vocabulary"] == ["<pad>", "<unk>", "amélie", "heat", "story", "the", "toy"]
    np.testing.assert_array_equal(s.valid.inputs["title"], [[6, 4], [3, 5]])
    np.testing.assert_array_equal(s.test.inputs["title"], [[2, 0], [3, 5]])
    assert s.train.inputs["title"].dtype == np.int32
    np.testing.assert_array_equal(s.train.env, 0)
    np.testing.assert_array_equal(s.valid.env, 1)
    np.testing.assert_array_equal(s.test.env, 2)


def test_default_genres_are_those_present(tmp_path: Path) -> None:
    d = write_layout(tmp_path / "m", "ml-latest")
    raw = read_movielens(d)
    assert len(raw.rating) == 32
    present = [g for g in GENRES if raw.genres[:, GENRES.index(g)].any()]
    assert present == ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Drama",
                       "Fantasy", "Romance", "Thriller"]  # fmt: skip
    # all 10 genres as tasks: Drama is only on movie 5, rated once at t=7 (train); valid holds
    # only ratings of movies 1 and 2, so Drama has no valid example, which must be reported
    with pytest.raises(ValueError, match=r"task 'Drama' has no example in the valid split"):
        load_movielens(d)


def test_half_stars_and_min_word_count(tmp_path: Path) -> None:
    ratings = [(u, m, r + 0.5 if r < 5 else r, t) for u, m, r, t in RATINGS]
    d = write_layout(tmp_path / "m", "ml-latest", ratings=ratings)
    s = load_movielens(d, genres=["Comedy", "Action"], min_word_count=2)
    np.testing.assert_array_equal(s.valid.targets, [[4.5, np.nan], [np.nan, 2.5]])
    # every word occurs in one train title only -> all <unk>
    assert s.meta["vocabulary"] == ["<pad>", "<unk>"]
    np.testing.assert_array_equal(s.valid.inputs["title"], [[1, 1], [1, 1]])


def test_tokenize_title() -> None:
    assert tokenize_title("Schindler's List (1993)") == ["schindler's", "list"]
    assert tokenize_title("Heat, The (1995)") == ["heat", "the"]
    assert tokenize_title("Babylon 5 (1994-1998)") == ["babylon", "5"]
    assert tokenize_title("Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)") == [
        "amélie", "fabuleux", "destin", "d'amélie", "poulain", "le"
    ]  # fmt: skip


def _random_ml(tmp_path: Path, seed: int, n: int = 3000) -> Path:
    rng = np.random.default_rng(seed)
    movies = []
    for m in range(1, 41):
        k = rng.integers(1, 4)
        movies.append(
            (
                m,
                f"Movie {m} word{m % 7} (1999)",
                list(rng.choice(GENRES[:6], size=k, replace=False)),
            )
        )
    users = rng.integers(1, 60, n)
    mids = rng.integers(1, 41, n)
    ts = rng.integers(0, 500, n)  # many ties
    ratings = [
        (int(u), int(m), int(r), int(t))
        for u, m, r, t in zip(users, mids, rng.integers(1, 6, n), ts)
    ]
    return write_layout(tmp_path / f"r{seed}", "ml-10m", ratings=ratings, movies=movies)


@pytest.mark.parametrize("seed", [0, 1])
def test_time_split_and_overlap_properties(tmp_path: Path, seed: int) -> None:
    d = _random_ml(tmp_path, seed)
    s = load_movielens(d, n_train_envs=3)
    ts = s.meta["timestamps"]
    # never a later rating in an earlier split
    assert ts["train"].max() <= ts["valid"].min() and ts["valid"].max() <= ts["test"].min()
    for split in ("train", "valid", "test"):
        assert np.all(np.diff(ts[split]) >= 0)
    # train keeps round(0.8 n) ratings
    assert len(s.train) == round(0.8 * 3000)
    # no valid/test user or movie unseen in train
    for split in (s.valid, s.test):
        assert np.isin(split.inputs["user"], s.train.inputs["user"]).all()
        assert np.isin(split.inputs["movie"], s.train.inputs["movie"]).all()
    # targets missing exactly where the movie lacks the genre
    raw = read_movielens(d)
    gcols = [GENRES.index(g) for g in s.meta["genres"]]
    row_of = {int(m): k for k, m in enumerate(raw.movie_ids)}
    for split in (s.train, s.valid, s.test):
        raw_ids = s.meta["movie_ids"][split.inputs["movie"]]
        has = raw.genres[[row_of[int(m)] for m in raw_ids]][:, gcols]
        np.testing.assert_array_equal(~np.isnan(split.targets), has)
        # the observed targets of a row are all equal (one rating)
        obs = np.where(has, split.targets, np.nan)
        assert np.all(np.nanmax(obs, axis=1) == np.nanmin(obs, axis=1))
    # train environments: three consecutive equal time periods
    np.testing.assert_array_equal(np.unique(s.train.env), [0, 1, 2])
    assert np.all(np.diff(s.train.env) >= 0)
    assert np.bincount(s.train.env).tolist() == [800, 800, 800]
    np.testing.assert_array_equal(s.valid.env, 3)
    np.testing.assert_array_equal(s.test.env, 4)


def test_genre_mse_by_hand() -> None:
    y = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]])
    p = np.array([[2.0, 9.0], [3.0, 0.0], [7.0, 5.0]])
    per, avg = genre_mse(p, y)
    np.testing.assert_allclose(per, [(1 + 0) / 2, (4 + 1) / 2])
    assert avg == pytest.approx((0.5 + 2.5) / 2)
    with pytest.raises(ValueError, match="shape"):
        genre_mse(p[:, :1], y)


# --- bad input ----------------------------------------------------------------------------------
def test_unrecognised_layout_lists_layouts(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(
        ValueError, match=r"no MovieLens layout recognised.*ml-100k.*ml-1m.*ml-10m.*ml-latest"
    ):
        load_movielens(tmp_path)


def test_missing_file_names_file_place_and_source(tmp_path: Path) -> None:
    d = write_layout(tmp_path / "m", "ml-latest")
    (d / "movies.csv").unlink()
    with pytest.raises(
        MissingDataError, match=r"movies\.csv.*" + str(d).replace("/", ".") + r".*grouplens"
    ):
        load_movielens(d)


def test_no_directory_mentions_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(MissingDataError, match="CAUSALMTL_DATA"):
        load_movielens()


def test_env_var_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_layout(tmp_path / "movielens" / "ml-latest-small", "ml-latest")
    monkeypatch.setenv("CAUSALMTL_DATA", str(tmp_path))
    assert len(load_movielens(genres=["Comedy", "Action"]).train) == 24


@pytest.mark.parametrize(
    ("layout", "bad", "file"),
    [
        ("ml-latest", "1,2,abc,7", "ratings.csv"),
        ("ml-latest", "1,2,3.0", "ratings.csv"),
        ("ml-10m", "1::2::3", "ratings.dat"),
        ("ml-10m", "1::2::3::4::5", "ratings.dat"),
        ("ml-10m", "1:x:2::3::4", "ratings.dat"),
        ("ml-100k", "1\t2\t\t4", "u.data"),
    ],
)
def test_malformed_rating_line_reports_file_and_line(
    tmp_path: Path, layout: str, bad: str, file: str
) -> None:
    d = write_layout(tmp_path / "m", layout)
    lines = (d / file).read_text().splitlines()
    pos = 4 if layout == "ml-latest" else 3  # 0-based index -> line 5 (csv header) / line 4
    lines.insert(pos, bad)
    (d / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{file}, line {pos + 1}: malformed"):
        load_movielens(d, genres=["Comedy", "Action"])


@pytest.mark.parametrize(
    ("layout", "value"),
    [
        ("ml-100k", "4.5"),
        ("ml-1m", "6"),
        ("ml-latest", "5.5"),
        ("ml-latest", "0.0"),
        ("ml-10m", "0.25"),
    ],
)
def test_out_of_range_rating(tmp_path: Path, layout: str, value: str) -> None:
    d = write_layout(tmp_path / "m", layout)
    file = {
        "ml-100k": "u.data",
        "ml-1m": "ratings.dat",
        "ml-10m": "ratings.dat",
        "ml-latest": "ratings.csv",
    }[layout]
    lines = (d / file).read_text().splitlines()
    sep = {"ml-100k": "\t", "ml-latest": ","}.get(layout, "::")
    fields = lines[2].split(sep)
    fields[2] = value
    lines[2] = sep.join(fields)
    (d / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=rf"{file}, line 3: rating .* outside the documented range"
    ):
        load_movielens(d, genres=["Comedy", "Action"])


def test_unknown_genre_argument_and_in_file(tmp_path: Path) -> None:
    d = write_layout(tmp_path / "m", "ml-latest")
    with pytest.raises(ValueError, match=r"unknown genre 'Comdy'; valid genres are \['Action'"):
        load_movielens(d, genres=["Comdy"])
    movies = [*MOVIES[:3], (4, "Amélie (2001)", ["Comedy", "Romanse"]), *MOVIES[4:]]
    d2 = write_layout(tmp_path / "m2", "ml-latest", movies=movies)
    with pytest.raises(ValueError, match=r"movies\.csv, line 5: unknown genre 'Romanse'"):
        load_movielens(d2)


def test_rating_of_unknown_movie(tmp_path: Path) -> None:
    d = write_layout(tmp_path / "m", "ml-1m", ratings=[*RATINGS, (1, 99, 3, 40)])
    with pytest.raises(
        ValueError, match=r"ratings\.dat, line 33: movie id 99 is not in movies\.dat"
    ):
        load_movielens(d)


def test_split_leaving_task_empty(tmp_path: Path) -> None:
    # Drama (movie 5) rated only at t=50, the very last rating: test; movie 5 unseen -> dropped
    ratings = [r for r in RATINGS if r[1] != 5] + [(2, 5, 4, 50)]
    d = write_layout(tmp_path / "m", "ml-latest", ratings=ratings)
    with pytest.raises(ValueError, match=r"task 'Drama' has no example in the train split"):
        load_movielens(d, genres=["Comedy", "Action", "Drama"])


def test_bad_arguments(tmp_path: Path) -> None:
    d = write_layout(tmp_path / "m", "ml-latest")
    with pytest.raises(ValueError, match="fractions"):
        load_movielens(d, fractions=(0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="n_train_envs"):
        load_movielens(d, n_train_envs=0)


# --- the real file ---------------------------------------------------------------------------------
REAL = SHARED_DATA / "movielens/ml-latest-small"


@pytest.mark.skipif(
    not (REAL / "ratings.csv").is_file(), reason="ml-latest-small not available here"
)
def test_real_ml_latest_small_loads_in_seconds() -> None:
    t0 = time.perf_counter()
    s = load_movielens(REAL)
    elapsed = time.perf_counter() - t0
    raw = read_movielens(REAL)
    # published counts (README.txt of ml-latest-small)
    assert len(raw.rating) == 100_836
    assert len(np.unique(raw.user)) == 610 and len(raw.movie_ids) == 9_742
    assert elapsed < 10.0
    n = 100_836 - s.meta["dropped"]["no_selected_genre"]
    assert len(s.train) == round(0.8 * n)
    ts = s.meta["timestamps"]
    assert ts["train"].max() <= ts["valid"].min() <= ts["valid"].max() <= ts["test"].min()
