"""Build the report of an output directory from its database and artefact files only.

``build_report(out)`` writes ``OUT/report.html`` (self-contained: figures embedded as base64
PNG), ``OUT/report.md`` (Markdown summary) and ``OUT/figures/*.png``. This module reads (the
results database, the registry, the stored configs, the artefacts) and turns what it read into
report blocks; :mod:`causalmtl.report` renders them and writes the files. For every experiment
with finished runs it calls the experiment's report function with a :class:`ReportContext`
(the long metrics frame, the runs, the stored config, and each run's saved arrays); an
experiment without one, or whose report function fails, gets a generic metrics table (and,
for a failure, the error), so one broken section never hides the others.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..report.blocks import Block, Section, Table, Text
from ..report.page import ReportFiles, glance_table, write_report
from ..report.tables import summary_table
from . import config as cfgmod
from . import registry
from .runner import DB_NAME, load_artefacts
from .store import ResultStore, RunRow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class ReportContext:
    """Everything an experiment's report function may read (database + artefacts)."""

    out: Path
    experiment: str
    config_hash: str
    config: Any
    frame: pd.DataFrame  # the long metrics frame (ResultStore.metrics_frame)
    runs: list[RunRow]
    _cache: dict[int, tuple[dict[str, np.ndarray], dict[str, Any]]] = field(default_factory=dict)

    def artefacts(self, run_id: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and info saved by run ``run_id``."""
        if run_id not in self._cache:
            self._cache[run_id] = load_artefacts(self.out, self.experiment, run_id)
        return self._cache[run_id]

    def runs_of(self, **eq: Any) -> list[RunRow]:
        """Finished runs whose attributes (``method=…``, ``dataset=…``) or params match."""
        out = []
        for r in self.runs:
            ok = True
            for k, v in eq.items():
                have = getattr(r, k) if hasattr(r, k) else r.params.get(k)
                ok &= have == v
            if ok:
                out.append(r)
        return out


def _current_hash(out: Path, name: str, store: ResultStore) -> str | None:
    path = out / "configs" / f"{name}.yaml"
    done = {h for e, h in store.experiments() if e == name}
    if path.exists():
        import yaml

        h = cfgmod.config_hash(yaml.safe_load(path.read_text()) or {})
        if h in done:
            return h
    # latest config with finished runs
    return sorted(done, key=lambda h: max(r.id for r in store.runs(name, h, "done")))[-1] if done else None


def _load_config(store: ResultStore, name: str, chash: str) -> Any:
    text = store.config_yaml(name, chash)
    if text is None:
        return None
    try:
        exp = registry.get(name)
        return cfgmod.from_yaml(exp.config_cls, text)
    except ValueError:
        import yaml

        return yaml.safe_load(text)


def experiment_section(out: Path, store: ResultStore, name: str, chash: str) -> Section:
    """The report section of one experiment (its own report function or a generic table)."""
    runs_all = store.runs(name, chash)
    runs = [r for r in runs_all if r.status == "done"]
    frame = store.metrics_frame(name, chash)
    config = _load_config(store, name, chash)
    ctx = ReportContext(out=out, experiment=name, config_hash=chash, config=config, frame=frame, runs=runs)
    try:
        exp = registry.get(name)
    except registry.UnknownExperimentError:
        exp = None
    title = name if exp is None else f"{name} — {exp.reproduces or exp.description}"
    section = Section(title=title, anchor=name)
    counts: dict[str, int] = {}
    for r in runs_all:
        counts[r.status] = counts.get(r.status, 0) + 1
    seconds = sum(r.duration or 0.0 for r in runs)
    seeds = sorted({r.seed for r in runs})
    section.meta = {"counts": counts, "seconds": seconds, "seeds": seeds}
    head = (f"{exp.description} " if exp is not None else "") + (
        f"Config `{chash}`; {counts.get('done', 0)} of {len(runs_all)} runs finished; seeds {seeds}; "
        f"compute time {registry.format_seconds(seconds)}."
    )
    section.blocks.append(Text(head, kind="note"))
    unfinished = {k: v for k, v in counts.items() if k != "done"}
    if unfinished:
        section.blocks.append(Text(
            f"Not every run finished ({unfinished}); rerun the same command to complete them. "
            "The tables below use the finished runs only.", kind="warning"))
    if exp is not None and exp.report is not None:
        try:
            section.blocks += list(exp.report(ctx))
            return section
        except Exception as exc:  # a failing section must not hide the others
            log.exception("report of %s failed", name)
            section.blocks.append(Text(f"The report of {name} failed: {type(exc).__name__}: {exc}", kind="warning"))
    if not frame.empty:
        for split in sorted(set(frame["split"])):
            section.blocks.append(Table(summary_table(frame, split=split), caption=f"All metrics, {split} split (mean ± std over seeds)"))
    return section


def build_report(out: str | os.PathLike[str], title: str = "causalmtl report") -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` in ``out``; return their paths.

    Raises ``ValueError`` when ``out`` holds no results database.
    """
    out = Path(out)
    db = out / DB_NAME
    if not db.exists():
        raise ValueError(f"no results database in {str(out)!r} (expected {db}); run `causalmtl run` first")
    import pandas as pd

    sections = []
    with ResultStore(db) as store:
        pairs = store.experiments()
        names = list(dict.fromkeys(e for e, _ in pairs))
        order = {n: i for i, n in enumerate(registry.names())}
        names.sort(key=lambda n: order.get(n, len(order)))
        for name in names:
            chash = _current_hash(out, name, store)
            if chash is not None:
                sections.append(experiment_section(out, store, name, chash))
    overview = pd.DataFrame([
        {
            "experiment": s.anchor,
            "runs done": s.meta["counts"].get("done", 0),
            "runs total": sum(s.meta["counts"].values()),
            "seeds": len(s.meta["seeds"]),
            "compute time": registry.format_seconds(s.meta["seconds"]),
        }
        for s in sections
    ])
    preamble: list[Block] = [
        Text(f"Built {time.strftime('%Y-%m-%d %H:%M')} from `{db}` and the artefact files beside it. "
             "Paper numbers are quoted beside ours with the difference (ours − paper)."),
    ]
    if sections:
        preamble.append(Table(overview, caption="Experiments in this directory"))
        glance = glance_table(sections)
        if glance is not None:
            preamble.append(glance)
    else:
        preamble.append(Text("The database holds no finished run yet.", kind="warning"))
    return write_report(out, title, sections, preamble)


__all__ = ["ReportContext", "build_report", "experiment_section"]
