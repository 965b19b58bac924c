"""``causalmtl shift``: how fragile is a model under target shift, and which α to trust.

Reads predictions (an ``.npz`` bundle, or the layout the authors' GMTL code writes), samples
``--draws`` shifted target priors q around p, and writes to ``--out``:

``draws.csv``              one row per draw, in draw order: ``tau, acc_0.0, acc_0.1, …``
``bins.csv``               one row per τ bin: bounds, count, optimal α, DMTL and optimal accuracy,
                           gain, and the accuracy-vs-α curve
``analysis.json``          the same analysis, the configuration and the inputs read
``figure3.png``            optimal α and gain per τ bin (Makino et al. 2022, Figure 3)
``accuracy_vs_alpha.png``  accuracy against α for every τ bin
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the shift modules only when a command runs
    from .files import ShiftInputs

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "shift",
        help="accuracy under simulated target shifts for every alpha (GMTL paper, Section 5-6)",
        description=(
            "Simulate target shifts q around the test prior p (Makino et al. 2022, Section 5.6), "
            "measure their severity with weighted Kendall's tau, estimate main-task accuracy under "
            "each q for every alpha by importance sampling, and bin the draws by tau to find the "
            "optimal alpha and the gain of GMTL over DMTL (Figure 3). Input: --bundle FILE.npz "
            "(see docs/shift.md) or the GMTL layout --gmtl-dir DIR --log-prior FILE."
        ),
    )
    src = p.add_argument_group("input (one of)")
    src.add_argument(
        "--bundle", action="append", metavar="NPZ",
        help="prediction bundle (.npz); repeat to pool several (e.g. seeds)",
    )  # fmt: skip
    src.add_argument(
        "--gmtl-dir", metavar="DIR",
        help="directory with s={i}/y_pred_{alpha}.pkl (the GMTL authors' layout). These are "
             "Python pickles, which can run code when read: TRUSTED FILES ONLY (use --bundle for "
             "files from anyone else)")
    src.add_argument(
        "--log-prior", metavar="FILE", help="torch.save'd flattened log prior (with --gmtl-dir)"
    )
    src.add_argument(
        "--n-classes", type=int, nargs="+", metavar="C", help="classes per task (with --gmtl-dir)"
    )
    src.add_argument(
        "--n-seeds", type=int, default=1, help="seeds s=0..n-1 to pool (with --gmtl-dir)"
    )
    p.add_argument(
        "--alphas", nargs="+", metavar="A",
        help="alphas to evaluate (default: all in the bundle, or 0 0.1 .. 1 when decoding); "
        "with --gmtl-dir, alpha 0 is read from y_pred_None.pkl and always included",
    )  # fmt: skip
    p.add_argument(
        "--main-task", type=int, default=0, help="task whose accuracy is reported (default 0)"
    )
    p.add_argument("--draws", type=int, default=1000, help="number of sampled q (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the q sampler (default 0)")
    p.add_argument("--protocol", choices=("shuffle", "dirichlet"), default="shuffle",
                   help="q sampling protocol: the paper's shuffle+noise (default) or Dirichlet")  # fmt: skip
    p.add_argument(
        "--shuffle-ub", type=float, default=0.5, help="shuffle protocol: max fraction s (0.5)"
    )
    p.add_argument("--sd-ub", type=float, default=5.0, help="shuffle protocol: max noise sd (5)")
    p.add_argument("--concentration", type=float, nargs="+", default=[1.0, 1000.0], metavar="C",
                   help="dirichlet protocol: c or a log-uniform range LOW HIGH (1 1000)")  # fmt: skip
    p.add_argument("--tau-variant", choices=("scipy", "shieh"), default="scipy",
                   help="weighted tau: scipy defaults as the authors (default) or Shieh 1998")  # fmt: skip
    p.add_argument("--bins", type=int, default=5, help="number of equal-width tau bins (default 5)")
    p.add_argument("--out", default="shift_out", help="output directory (default ./shift_out)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (bars are shown only when stderr is a terminal)")
    p.set_defaults(func=run)


def _inputs(args: argparse.Namespace) -> ShiftInputs:
    from .files import load_bundles, load_gmtl_dir

    if bool(args.bundle) == bool(args.gmtl_dir):
        raise ValueError(
            "give exactly one input: --bundle FILE.npz or --gmtl-dir DIR (with --log-prior)"
        )
    if args.bundle:
        alphas = None
        if args.alphas is not None:
            try:
                alphas = [float(a) for a in args.alphas]
            except ValueError as exc:
                raise ValueError(f"--alphas must be numbers in [0, 1], got {args.alphas}") from exc
        return load_bundles(args.bundle, alphas, task=args.main_task)
    if not args.log_prior or not args.n_classes:
        raise ValueError("--gmtl-dir needs --log-prior FILE and --n-classes C1 C2 ...")
    if not args.alphas:
        raise ValueError(
            "--gmtl-dir needs --alphas (the alpha of each y_pred_{alpha}.pkl; 0 is y_pred_None)"
        )
    return load_gmtl_dir(args.gmtl_dir, args.log_prior, args.n_classes, args.n_seeds, args.alphas)


def _check_out(out: str) -> Path:
    """``--out`` created, or one clear error when it is a file or cannot be written."""
    import os

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out!r} is not a directory (a file of that name exists)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out {out!r}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise ValueError(f"--out {out!r} cannot be created: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out!r} is not writable")
    return path


def run(args: argparse.Namespace) -> int:
    """Entry point of ``causalmtl shift``."""
    import numpy as np

    from .analysis import analyze
    from .evaluate import evaluate_shift
    from .sample import make_sampler

    if args.protocol == "shuffle":
        sampler = make_sampler("shuffle", shuffle_ub=args.shuffle_ub, sd_ub=args.sd_ub)
    else:
        c = args.concentration
        if len(c) not in (1, 2):
            raise ValueError(f"--concentration takes one value or LOW HIGH, got {c}")
        sampler = make_sampler("dirichlet", concentration=c[0] if len(c) == 1 else (c[0], c[1]))
    if args.draws < 2:
        raise ValueError(f"--draws must be >= 2 (draws are binned by tau), got {args.draws}")
    out = _check_out(args.out)  # before the work, not after it
    inputs = _inputs(args)
    draws = evaluate_shift(
        inputs.labels,
        inputs.predictions,
        inputs.log_p,
        inputs.alphas,
        n_classes=inputs.n_classes,
        task=args.main_task,
        n_draws=args.draws,
        seed=args.seed,
        sampler=sampler,
        tau_variant=args.tau_variant,
        progress=not args.no_progress and sys.stderr.isatty(),  # no bars in pipes and logs
    )
    analysis = analyze(draws, n_bins=args.bins)
    draws.to_csv(out / "draws.csv")
    analysis.to_csv(out / "bins.csv")
    report = {
        "config": {
            **sampler.config(),
            "draws": args.draws,
            "seed": args.seed,
            "tau_variant": args.tau_variant,
            "bins": args.bins,
            "main_task": args.main_task,
        },
        "inputs": {
            **inputs.source,
            "n_classes": list(inputs.n_classes),
            "n_examples": int(inputs.labels.shape[0]),
            "n_main_labelled": int((inputs.labels[:, args.main_task] >= 0).sum()),
            "alphas": [float(a) for a in inputs.alphas],
        },
        "analysis": analysis.to_dict(),
    }
    (out / "analysis.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_figures:
        from .plots import plot_accuracy_vs_alpha, plot_figure3

        plot_figure3(analysis, out / "figure3.png")
        plot_accuracy_vs_alpha(analysis, out / "accuracy_vs_alpha.png")
    print(
        f"causalmtl shift: {args.draws} draws of q ({sampler.name}, seed {args.seed}), "
        f"{inputs.labels.shape[0]} examples, main task {args.main_task}, tau variant {args.tau_variant}"
    )
    print(
        f"{'tau bin':>18} {'draws':>6} {'opt alpha':>9} {'acc DMTL':>9} {'acc opt':>8} {'gain':>7}"
    )
    for b in range(analysis.n_bins)[::-1]:
        lo, hi = analysis.edges[b], analysis.edges[b + 1]
        row = (
            analysis.optimal_alpha[b],
            analysis.accuracy_dmtl[b],
            analysis.accuracy_optimal[b],
            analysis.gain[b],
        )
        cells = ["-" if np.isnan(v) else f"{v:.4f}" for v in row]
        print(
            f"[{lo:+.3f}, {hi:+.3f}] {analysis.counts[b]:>6} {cells[0]:>9} {cells[1]:>9} {cells[2]:>8} {cells[3]:>7}"
        )
    print(f"Pearson r(tau bin midpoint, optimal alpha) = {analysis.correlation:.3f}")
    if analysis.empty_bins:
        print(f"empty tau bins (no draw): {list(analysis.empty_bins)}")
    print(
        f"wrote {out}/draws.csv, bins.csv, analysis.json"
        + ("" if args.no_figures else ", figure3.png, accuracy_vs_alpha.png")
    )
    return 0
