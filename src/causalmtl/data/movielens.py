"""MovieLens as per-genre rating regression (MT-CRL, Hu et al. 2022, §4 and Appendix C.2).

Each genre is one regression task: a rating is the target of every genre of its movie and is
missing (``NaN``) for every other genre. The input of a rating is a dict

* ``"user"``: ``int32 (N,)`` user index in ``[0, n_users)``;
* ``"movie"``: ``int32 (N,)`` movie index in ``[0, n_movies)``;
* ``"title"``: ``int32 (N, L)`` the movie title's word ids, padded with 0 (``<pad>``);
  1 is ``<unk>`` (a word rarer than ``min_word_count``); ``meta["vocabulary"][i]`` is word ``i``.

Split (Appendix C.2): ratings sorted by timestamp (stable, ties keep file order) are cut 8:1:1
into train / valid / test, then the valid and test ratings whose user or movie never occurs in
train are dropped ("filter out non-overlapping users and movies"). Every user and movie index
therefore refers to an entity seen in training.

Every public MovieLens layout is read; the layout is detected from the files present:

==================  =========================================  =================================
layout              files                                      notes
==================  =========================================  =================================
``ml-100k``         ``u.data`` (tab), ``u.item`` (``|``)       Latin-1; 19 genre flags, whole
                                                               stars 1–5
``ml-1m``           ``ratings.dat``, ``movies.dat``, ``users.  ``::`` separators; genres joined
                    dat``                                      by ``|``; whole stars 1–5
``ml-10m``          ``ratings.dat``, ``movies.dat``            as ml-1m, half stars 0.5–5
``ml-latest``       ``ratings.csv``, ``movies.csv`` (header)   also ml-latest-small; half stars
==================  =========================================  =================================

Genre names are canonical across layouts (``Children's`` of ml-100k / ml-1m is ``Children``);
the pseudo-genres ``unknown`` and ``(no genres listed)`` are not tasks, and ratings of movies
with none of the selected genres are dropped before the split.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # torch is not imported at run time by this loader
    import torch

from ._sources import (
    MissingDataError,
    candidate_dirs,
    check_no_empty_task,
    data_root,
    find_line,
    missing_data_error,
)
from .base import DatasetSplits, MultiTaskDataset, Task

logger = logging.getLogger(__name__)

__all__ = [
    "GENRES",
    "LAYOUTS",
    "PAPER_GENRES",
    "MovieLensRatings",
    "detect_layout",
    "genre_mse",
    "load_movielens",
    "read_movielens",
    "tokenize_title",
]

#: Every genre MovieLens documents, in its canonical (ml-latest) spelling and order.
GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
#: The 18 genres of the paper (Appendix C.2: ml-10m without IMAX).
PAPER_GENRES: tuple[str, ...] = tuple(g for g in GENRES if g != "IMAX")
#: Spellings of older layouts mapped to the canonical names.
GENRE_ALIASES: dict[str, str] = {"Children's": "Children", "Childrens": "Children"}
#: Genre entries that are not genres (no task).
PSEUDO_GENRES: frozenset[str] = frozenset({"unknown", "(no genres listed)"})
#: The 19 genre flag columns of ml-100k's u.item, in file order.
ML100K_GENRE_FLAGS: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

SOURCE = "https://grouplens.org/datasets/movielens/ (e.g. https://files.grouplens.org/datasets/movielens/ml-latest-small.zip)"


@dataclass(frozen=True)
class _Layout:
    name: str
    ratings: str
    movies: str
    rating_range: tuple[float, float, float]  # low, high, step


#: The layouts, in the order detection tries them.
LAYOUTS: tuple[_Layout, ...] = (
    _Layout("ml-100k", "u.data", "u.item", (1.0, 5.0, 1.0)),
    _Layout("ml-1m", "ratings.dat", "movies.dat", (1.0, 5.0, 1.0)),
    _Layout("ml-10m", "ratings.dat", "movies.dat", (0.5, 5.0, 0.5)),
    _Layout("ml-latest", "ratings.csv", "movies.csv", (0.5, 5.0, 0.5)),
)
_SUBDIRS = (
    "ml-latest-small", "ml-latest", "ml-10M100K", "ml-10m", "ml-1m", "ml-100k",
    "movielens/ml-latest-small", "movielens/ml-latest", "movielens/ml-10M100K",
    "movielens/ml-10m", "movielens/ml-1m", "movielens/ml-100k",
)  # fmt: skip


def _layouts_tried() -> str:
    return "; ".join(f"{lay.name} ({lay.ratings} + {lay.movies})" for lay in LAYOUTS)


def detect_layout(directory: str | os.PathLike[str]) -> str:
    """Name of the MovieLens layout whose files are present in ``directory``.

    ``ml-1m`` and ``ml-10m`` share their file names; ``users.dat`` (shipped only with ml-1m)
    tells them apart. Raises :class:`~causalmtl.data.MissingDataError` when a layout is only
    half present (names the absent file) and ``ValueError`` listing the layouts tried when none
    is recognised.
    """
    d = Path(directory)
    for lay in LAYOUTS:
        has_r, has_m = (d / lay.ratings).is_file(), (d / lay.movies).is_file()
        if has_r and has_m:
            if lay.name == "ml-1m" and not (d / "users.dat").is_file():
                continue
            return lay.name
        if has_r != has_m:
            absent = lay.movies if has_r else lay.ratings
            present = lay.ratings if has_r else lay.movies
            name = "ml-1m/ml-10m" if lay.ratings == "ratings.dat" else lay.name
            raise missing_data_error(
                f"MovieLens {name} layout ({present} found)", absent, [d], SOURCE
            )
    listing = sorted(p.name for p in d.iterdir())[:12] if d.is_dir() else "no such directory"
    raise ValueError(
        f"path {str(d)!r}: no MovieLens layout recognised (contents: {listing}); layouts tried: "
        f"{_layouts_tried()}"
    )


def _find_directory(path: str | os.PathLike[str] | None) -> Path:
    root = data_root(path)
    if root is None:
        raise missing_data_error("MovieLens", "ratings.csv", [], SOURCE, root_given=False)
    dirs = candidate_dirs(root, _SUBDIRS)
    for d in dirs:
        if d.is_dir() and any(
            (d / lay.ratings).is_file() or (d / lay.movies).is_file() for lay in LAYOUTS
        ):
            return d
    if root.is_dir() and any(root.iterdir()):
        detect_layout(root)  # raises the "no layout recognised" error listing the layouts
    raise MissingDataError(
        f"MovieLens: no ratings file found; expected one of "
        f"{sorted({lay.ratings for lay in LAYOUTS})} with its movies file in {str(root)!r} or in "
        f"one of its sub-directories {list(_SUBDIRS)}. Get it from {SOURCE} (see docs/datasets.md)."
    )


# --------------------------------------------------------------------------------------------
# Titles
_YEAR = re.compile(r"\s*\(\s*\d{4}(?:\s*[-–]\s*\d{0,4})?\s*\)\s*$")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize_title(title: str) -> list[str]:
    """Lower-case words of a movie title, without the trailing ``(year)``.

    A word is a run of letters/digits (Unicode), optionally joined by apostrophes
    (``"Schindler's List (1993)"`` -> ``["schindler's", "list"]``).
    """
    return _WORD.findall(_YEAR.sub("", title).lower())


# --------------------------------------------------------------------------------------------
# Raw reading
@dataclass
class MovieLensRatings:
    """The raw content of one MovieLens directory (before tasks and splits).

    Attributes
    ----------
    layout : detected layout name
    user, movie : raw ids of each rating, ``int64 (N,)``, file order
    rating : ``float32 (N,)``
    timestamp : ``int64 (N,)`` seconds since the epoch
    movie_ids : ``int64 (M,)`` raw id of each movie of the movies file
    titles : the M titles
    genres : ``bool (M, len(GENRES))``, column ``g`` true when the movie has ``GENRES[g]``
    """

    layout: str
    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    movie_ids: np.ndarray
    titles: list[str]
    genres: np.ndarray


def _canonical_genre(name: str, file: Path, line: int) -> str | None:
    g = GENRE_ALIASES.get(name, name)
    if g in PSEUDO_GENRES:
        return None
    if g not in GENRES:
        raise ValueError(
            f"{file}, line {line}: unknown genre {name!r}; valid genres are {list(GENRES)} "
            f"(or {sorted(PSEUDO_GENRES)})"
        )
    return g


def _decode(data: bytes, encoding: str | None) -> str:
    if encoding is not None:
        return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _read_movies(file: Path, layout: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    text = _decode(file.read_bytes(), "latin-1" if layout == "ml-100k" else None)
    col = {g: j for j, g in enumerate(GENRES)}
    ids: list[int] = []
    titles: list[str] = []
    rows: list[int] = []
    cols: list[int] = []
    if layout == "ml-latest":
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header != ["movieId", "title", "genres"]:
            raise ValueError(
                f"{file}, line 1: expected the header 'movieId,title,genres', got {header!r}"
            )
        records = ((reader.line_num, rec) for rec in reader)
        n_fields = 3
    else:
        sep, n_fields = ("|", 24) if layout == "ml-100k" else ("::", 3)
        records = ((i, ln.split(sep)) for i, ln in enumerate(text.splitlines(), 1) if ln != "")
    for line, rec in records:
        if len(rec) != n_fields or not rec[0].strip().isdigit():
            raise ValueError(
                f"{file}, line {line}: malformed movie record {rec!r}; expected {n_fields} fields "
                f"starting with an integer movie id ({layout} layout)"
            )
        ids.append(int(rec[0]))
        titles.append(rec[1])
        if layout == "ml-100k":
            flags = rec[5:]
            if any(f not in ("0", "1") for f in flags):
                raise ValueError(f"{file}, line {line}: genre flags must be 0 or 1, got {flags!r}")
            names = [ML100K_GENRE_FLAGS[k] for k, f in enumerate(flags) if f == "1"]
        else:
            names = rec[2].split("|") if rec[2] else []
        for name in names:
            g = _canonical_genre(name, file, line)
            if g is not None:
                rows.append(len(ids) - 1)
                cols.append(col[g])
    movie_ids = np.asarray(ids, dtype=np.int64)
    uniq, counts = np.unique(movie_ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{file}: movie id {int(uniq[counts > 1][0])} occurs more than once")
    genres = np.zeros((len(ids), len(GENRES)), dtype=bool)
    genres[rows, cols] = True
    return movie_ids, titles, genres


_LINE_PATTERNS = {
    "ml-100k": re.compile(r"^\d+\t\d+\t\d+(\.\d+)?\t\d+$"),
    "ml-1m": re.compile(r"^\d+::\d+::\d+(\.\d+)?::\d+$"),
    "ml-10m": re.compile(r"^\d+::\d+::\d+(\.\d+)?::\d+$"),
    "ml-latest": re.compile(r"^\d+,\d+,\d+(\.\d+)?,\d+$"),
}
_FORMATS = {
    "ml-100k": "user<TAB>item<TAB>rating<TAB>timestamp",
    "ml-1m": "UserID::MovieID::Rating::Timestamp",
    "ml-10m": "UserID::MovieID::Rating::Timestamp",
    "ml-latest": "userId,movieId,rating,timestamp",
}


def _read_ratings(file: Path, layout: str) -> tuple[np.ndarray, ...]:
    """Fast typed read (pandas C parser); on failure, name the first malformed line."""
    import pandas as pd

    header = 1 if layout == "ml-latest" else 0
    kw: dict[str, Any] = {"engine": "c", "skip_blank_lines": False, "na_filter": True}
    if layout == "ml-latest":
        names = ["userId", "movieId", "rating", "timestamp"]
        kw |= {
            "sep": ",",
            "header": 0,
            "dtype": {
                "userId": "int64",
                "movieId": "int64",
                "rating": "float32",
                "timestamp": "int64",
            },
        }
    elif layout == "ml-100k":
        names = ["user", "movie", "rating", "timestamp"]
        kw |= {
            "sep": "\t",
            "header": None,
            "names": names,
            "dtype": {"user": "int64", "movie": "int64", "rating": "float32", "timestamp": "int64"},
        }
    else:  # "a::b::c::d" read with ':' as the separator: the empty fields 1, 3, 5 must stay empty
        names = ["user", "e1", "movie", "e2", "rating", "e3", "timestamp"]
        kw |= {
            "sep": ":",
            "header": None,
            "names": names,
            "dtype": {
                "user": "int64",
                "e1": "float32",
                "movie": "int64",
                "e2": "float32",
                "rating": "float32",
                "e3": "float32",
                "timestamp": "int64",
            },
        }
    pattern = _LINE_PATTERNS[layout]
    try:
        df = pd.read_csv(file, **kw)
        if layout == "ml-latest" and list(df.columns) != names:
            raise ValueError("header")
        if layout in ("ml-1m", "ml-10m") and df[["e1", "e2", "e3"]].notna().to_numpy().any():
            raise ValueError("separator")
        if df["rating"].isna().any():
            raise ValueError("missing rating")
    except (ValueError, pd.errors.ParserError) as exc:
        if layout == "ml-latest":
            with open(file, encoding="utf-8", errors="replace") as fh:
                first = fh.readline().rstrip("\r\n")
            if first != ",".join(names):
                raise ValueError(
                    f"{file}, line 1: expected the header {','.join(names)!r}, got {first!r}"
                ) from None
        line, text = find_line(file, lambda t: pattern.match(t) is None, skip=header)
        if line:
            raise ValueError(
                f"{file}, line {line}: malformed rating line {text!r}; expected "
                f"{_FORMATS[layout]!r} ({layout} layout)"
            ) from None
        raise ValueError(f"{file}: could not be read as a {layout} ratings file: {exc}") from exc
    if len(df) == 0:
        raise ValueError(f"{file}: holds no rating")
    user = df["user" if layout != "ml-latest" else "userId"].to_numpy(np.int64)
    movie = df["movie" if layout != "ml-latest" else "movieId"].to_numpy(np.int64)
    rating = df["rating"].to_numpy(np.float32)
    timestamp = df["timestamp"].to_numpy(np.int64)
    del df
    low, high, step = next(lay.rating_range for lay in LAYOUTS if lay.name == layout)
    steps = rating / np.float32(step)
    bad = (rating < low) | (rating > high) | (steps != np.round(steps))
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(
            f"{file}, line {r + 1 + header}: rating {float(rating[r])!r} is outside the documented "
            f"range of the {layout} layout: {low:g} to {high:g} in steps of {step:g}"
        )
    return user, movie, rating, timestamp


def read_movielens(path: str | os.PathLike[str] | None = None) -> MovieLensRatings:
    """Read the ratings and movies of a MovieLens directory in any public layout.

    Parameters
    ----------
    path : a MovieLens directory, or a data root holding one (e.g. ``movielens/ml-latest-small``);
        ``None`` reads ``$CAUSALMTL_DATA``.
    """
    directory = _find_directory(path)
    layout = detect_layout(directory)
    lay = next(x for x in LAYOUTS if x.name == layout)
    movie_ids, titles, genres = _read_movies(directory / lay.movies, layout)
    user, movie, rating, timestamp = _read_ratings(directory / lay.ratings, layout)
    pos = np.searchsorted(np.sort(movie_ids), movie)
    known = np.sort(movie_ids)[np.minimum(pos, len(movie_ids) - 1)] == movie
    if not known.all():
        r = int(np.argmin(known))
        raise ValueError(
            f"{directory / lay.ratings}, line {r + 1 + (layout == 'ml-latest')}: movie id "
            f"{int(movie[r])} is not in {lay.movies}"
        )
    logger.info(
        "read %d ratings of %d movies (%s) from %s", len(rating), len(movie_ids), layout, directory
    )
    return MovieLensRatings(layout, user, movie, rating, timestamp, movie_ids, titles, genres)


# --------------------------------------------------------------------------------------------
def _select_genres(genres: Sequence[str] | str | None, present: np.ndarray) -> list[str]:
    if genres is None:
        return [g for g, p in zip(GENRES, present) if p]
    if isinstance(genres, str):
        if genres != "paper":
            genres = [genres]
        else:
            genres = list(PAPER_GENRES)
    out = []
    for g in genres:
        c = GENRE_ALIASES.get(g, g)
        if c not in GENRES:
            raise ValueError(f"genres: unknown genre {g!r}; valid genres are {list(GENRES)}")
        if c in out:
            raise ValueError(f"genres: genre {g!r} is listed twice")
        out.append(c)
    if not out:
        raise ValueError(f"genres: no genre selected; give at least one of {list(GENRES)}")
    return out


def load_movielens(
    path: str | os.PathLike[str] | None = None,
    *,
    genres: Sequence[str] | str | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    min_word_count: int = 1,
    max_title_words: int = 12,
    n_train_envs: int = 1,
) -> DatasetSplits:
    """Per-genre rating regression splits of MovieLens (MT-CRL Appendix C.2).

    Parameters
    ----------
    path : MovieLens directory or a data root holding one; ``None`` uses ``$CAUSALMTL_DATA``.
    genres : the tasks: ``None`` = every genre some movie has (canonical order of
        :data:`GENRES`), ``"paper"`` = the paper's 18 (:data:`PAPER_GENRES`), or a list of names.
    fractions : train / valid / test shares of the time-ordered ratings (default 8:1:1).
        ``round(f_train * N)`` and ``round(f_valid * N)`` ratings go to train and valid.
    min_word_count : title words occurring in fewer train-movie titles map to ``<unk>`` (id 1).
    max_title_words : titles longer than this keep their first ``max_title_words`` words; the
        title array has width ``min(max_title_words, longest title)``.
    n_train_envs : number of environments in train: consecutive time periods of equal size with
        ids ``0..n_train_envs-1``; valid gets id ``n_train_envs`` and test ``n_train_envs + 1``
        (with the default 1: train 0, valid 1, test 2).

    Returns
    -------
    DatasetSplits
        Regression tasks, one per genre; targets ``float64 (N, G)`` equal to the rating where
        the movie has the genre and ``NaN`` elsewhere. Rows of each split are in time order.
        ``meta`` holds ``layout``, ``directory``, ``genres``, ``vocabulary`` (list, id -> word),
        ``user_ids`` / ``movie_ids`` (raw id of each index), ``titles`` (per movie index),
        ``n_users``, ``n_movies``, ``timestamps`` (dict split -> ``int64`` array), ``dropped``
        (counts of ratings removed by each filter).
    """
    if (
        len(fractions) != 3
        or any(not (0 < f < 1) for f in fractions)
        or abs(sum(fractions) - 1) > 1e-9
    ):
        raise ValueError(
            f"fractions must be three numbers in (0, 1) summing to 1, got {fractions!r}"
        )
    for name, v, low in (
        ("min_word_count", min_word_count, 1),
        ("max_title_words", max_title_words, 1),
        ("n_train_envs", n_train_envs, 1),
    ):
        if int(v) != v or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    raw = read_movielens(path)
    selected = _select_genres(genres, np.asarray(raw.genres.any(axis=0)))
    gcols = [GENRES.index(g) for g in selected]
    movie_genres = raw.genres[:, gcols]

    # movie raw id -> row of the movies file
    order_m = np.argsort(raw.movie_ids)
    mrow = order_m[np.searchsorted(raw.movie_ids[order_m], raw.movie)]
    has_genre = np.asarray(movie_genres.any(axis=1))[mrow]
    dropped = {"no_selected_genre": int((~has_genre).sum())}
    keep = np.flatnonzero(has_genre)
    n = len(keep)
    if n == 0:
        raise ValueError(f"genres: no rating has any of the selected genres {selected}")
    order = keep[np.argsort(raw.timestamp[keep], kind="stable")]
    del keep, has_genre
    n_tr = int(round(fractions[0] * n))
    n_va = int(round(fractions[1] * n))
    parts = {
        "train": order[:n_tr],
        "valid": order[n_tr : n_tr + n_va],
        "test": order[n_tr + n_va :],
    }
    del order

    tr = parts["train"]
    user_ids = np.unique(raw.user[tr])
    movie_rows = np.unique(mrow[tr])  # rows of the movies file seen in train
    for s in ("valid", "test"):
        idx = parts[s]
        ok = np.isin(raw.user[idx], user_ids) & np.isin(mrow[idx], movie_rows)
        dropped[f"{s}_unseen_user_or_movie"] = int((~ok).sum())
        parts[s] = idx[ok]

    vocab, title_ids = _vocabulary(
        [raw.titles[r] for r in movie_rows], min_word_count, max_title_words
    )
    tasks = tuple(Task(g, "regression") for g in selected)
    env_ids = {"valid": n_train_envs, "test": n_train_envs + 1}
    out = {}
    timestamps = {}
    for s, idx in parts.items():
        uidx = np.searchsorted(user_ids, raw.user[idx]).astype(np.int32)
        midx = np.searchsorted(movie_rows, mrow[idx]).astype(np.int32)
        ratings = raw.rating[idx].astype(np.float64)
        targets = np.where(movie_genres[mrow[idx]], ratings[:, None], np.nan)
        if s == "train":
            env = (np.arange(len(idx)) * n_train_envs // max(len(idx), 1)).astype(np.int64)
        else:
            env = np.full(len(idx), env_ids[s], dtype=np.int64)
        if len(idx) == 0:
            raise ValueError(
                f"movielens/{raw.layout}: the {s} split is empty after dropping users and movies "
                f"unseen in train; the data are too few for fractions {fractions}"
            )
        out[s] = MultiTaskDataset(
            inputs={"user": uidx, "movie": midx, "title": title_ids[midx]},
            targets=targets,
            tasks=tasks,
            env=env,
            name=f"movielens/{raw.layout}/{s}",
        )
        timestamps[s] = raw.timestamp[idx]
    splits = DatasetSplits(
        out["train"],
        out["valid"],
        out["test"],
        name=f"movielens/{raw.layout}",
        meta={
            "layout": raw.layout,
            "genres": selected,
            "vocabulary": vocab,
            "user_ids": user_ids,
            "movie_ids": raw.movie_ids[movie_rows],
            "titles": [raw.titles[r] for r in movie_rows],
            "n_users": len(user_ids),
            "n_movies": len(movie_rows),
            "timestamps": timestamps,
            "dropped": dropped,
        },
    )
    check_no_empty_task(splits)
    return splits


def _vocabulary(titles: list[str], min_count: int, max_words: int) -> tuple[list[str], np.ndarray]:
    tokens = [tokenize_title(t) for t in titles]
    counts = Counter(w for ws in tokens for w in set(ws))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = ["<pad>", "<unk>", *words]
    index = {w: i for i, w in enumerate(vocab)}
    width = max(1, min(max_words, max((len(ws) for ws in tokens), default=1)))
    ids = np.zeros((len(titles), width), dtype=np.int32)
    for r, ws in enumerate(tokens):  # one row per movie (not per rating)
        row = [index.get(w, 1) for w in ws[:width]]
        ids[r, : len(row)] = row
    return vocab, ids


def genre_mse(predictions: npt.ArrayLike | torch.Tensor, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean squared error per genre over the observed targets, and their average.

    ``MSE_g = mean_{i: y_ig observed} (ŷ_ig − y_ig)²`` and ``avg = mean_g MSE_g`` — the
    "Avg. MSE" of MT-CRL Table 7. ``predictions`` ``(N, G)`` (numpy or torch); ``targets``
    ``(N, G)`` with ``NaN`` where missing. A genre with no observed target raises.
    """
    from .._validation import as_numpy

    pred = np.asarray(as_numpy(predictions), dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if pred.shape != y.shape or y.ndim != 2:
        raise ValueError(f"predictions must have the targets' shape {y.shape}, got {pred.shape}")
    seen = ~np.isnan(y)
    count = seen.sum(axis=0)
    if (count == 0).any():
        raise ValueError(f"targets: task column {int(np.argmin(count))} has no observed target")
    err = np.where(seen, (pred - np.where(seen, y, 0.0)) ** 2, 0.0)
    per = err.sum(axis=0) / count
    return per, float(per.mean())
