"""``causalmtl data``: describe a dataset (sizes, environments, joint label tables) or draw Figure 2.

``causalmtl data show multi-digits --protocol pairs`` builds the dataset and prints its
splits, environment ids and per-split ``p(y, y')`` tables; ``causalmtl data figure2 fig2.png``
writes GMTL's Figure 2 and prints the boundaries; ``causalmtl data synthetic nyuv2 DIR`` (or
``cityscapes``) writes a small synthetic copy in the dataset's real file layout.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import DatasetSplits

DATASETS = ("gaussian-toy", "multi-sem", "multi-digits", "multi-mnist")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "data",
        help="describe a built-in dataset or write GMTL's Figure 2",
        description="Inspect the synthetic and digit datasets of causalmtl.data (see docs/data.md).",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    show = dsub.add_parser("show", help="build a dataset; print splits, env ids and joint label tables")
    show.add_argument("name", choices=DATASETS)
    show.add_argument("--protocol", choices=("biased", "pairs"), default=None,
                      help="Multi-Digits / Multi-MNIST protocol (default: biased for digits, pairs for MNIST)")
    show.add_argument("--m", type=float, default=0.9, help="train agreement m (biased protocol, Multi-SEM)")
    show.add_argument("--n-tasks", type=int, default=2, help="Multi-SEM tasks (2 to 8)")
    show.add_argument("--n-train", type=int, default=2000)
    show.add_argument("--n-valid", type=int, default=500)
    show.add_argument("--n-test", type=int, default=2000)
    show.add_argument("--data-dir", default=None, help="MNIST directory (default $CAUSALMTL_DATA)")
    show.add_argument("--seed", type=int, default=0)
    show.set_defaults(func=_show)

    syn = dsub.add_parser("synthetic", help="write a small synthetic NYUv2 / CityScapes copy in a real layout",
                          description="Write a synthetic dataset in the real file layout (docs/datasets.md) "
                                      "for the tiny presets; then load it with --data-dir / CAUSALMTL_DATA.")
    syn.add_argument("dataset", choices=("nyuv2", "cityscapes"))
    syn.add_argument("directory", help="where to write (created)")
    syn.add_argument("--layout", default=None,
                     help="nyuv2: preprocessed (default) or labeled-mat; cityscapes: raw (default) or preprocessed")
    syn.add_argument("--n", type=int, default=None, help="images (nyuv2, default 40) or images per city "
                                                         "(cityscapes, default 4)")
    syn.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None, help="image size")
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(func=_synthetic)

    fig = dsub.add_parser("figure2", help="write GMTL Figure 2 (decision boundary vs Cov[Y, Y']) as PNG")
    fig.add_argument("out", help="PNG path to write")
    fig.add_argument("--points", type=int, default=41, help="number of Cov values in [-0.2, 0.2]")
    fig.set_defaults(func=_figure2)


def _build(args: argparse.Namespace) -> DatasetSplits:
    from . import make_gaussian_toy, make_multi_digits, make_multi_mnist, make_multi_sem

    sizes = {"n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test}
    if args.name == "gaussian-toy":
        return make_gaussian_toy(**sizes, seed=args.seed)
    if args.name == "multi-sem":
        return make_multi_sem(n_tasks=args.n_tasks, m_train=args.m, **sizes, seed=args.seed)
    if args.name == "multi-digits":
        return make_multi_digits(args.protocol or "biased", m=args.m, **sizes, seed=args.seed)
    return make_multi_mnist(args.data_dir, args.protocol or "pairs", m=args.m, **sizes, seed=args.seed)


def _show(args: argparse.Namespace) -> int:
    import numpy as np

    from ._sources import MissingDataError

    try:
        splits = _build(args)
    except MissingDataError as exc:  # in the CLI's words: --data-dir, not path=...
        msg = str(exc).replace("pass path=...", "pass --data-dir DIR").replace("pass data_dir=...", "pass --data-dir DIR")
        raise MissingDataError(msg) from None
    print(splits.summary())
    shape = np.asarray(splits.train.inputs).shape[1:]
    print(f"input shape per example: {shape}; tasks: "
          + ", ".join(f"{t.name} ({t.n_classes} classes)" for t in splits.tasks))
    with np.printoptions(precision=3, suppress=True, linewidth=120):
        for split, table in splits.joint_tables().items():
            if table.ndim == 2:
                print(f"\nempirical p(y, y') in {split} (rows: {splits.tasks[0].name}):\n{table}")
            else:
                print(f"\nempirical p(y) in {split}: {table.size} cells, "
                      f"{int((table > 0).sum())} non-zero, max {table.max():.3f}")
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    kw = {"seed": args.seed}
    if args.size is not None:
        kw["size"] = tuple(args.size)
    if args.dataset == "nyuv2":
        from .nyuv2 import load_nyuv2, write_synthetic_nyuv2

        layout = args.layout or "preprocessed"
        write_synthetic_nyuv2(args.directory, **({"n": args.n} if args.n else {}), layout=layout, **kw)
        splits = load_nyuv2(args.directory, layout=layout)
    else:
        from .cityscapes import load_cityscapes, write_synthetic_cityscapes

        layout = args.layout or "raw"
        write_synthetic_cityscapes(args.directory, **({"n_per_city": args.n} if args.n else {}), layout=layout, **kw)
        splits = load_cityscapes(args.directory, layout=layout, valid_size=0.2)
    print(f"wrote a synthetic {args.dataset} ({layout} layout) to {args.directory}")
    print(splits.summary())
    print(f"split: {splits.meta['split']}; environments: {splits.meta['environments']}")
    return 0


def _figure2(args: argparse.Namespace) -> int:
    import numpy as np

    from .gaussian_toy import PAPER_COV_RANGE, decision_boundaries, plot_decision_boundaries

    if args.points < 2:
        raise ValueError(f"--points must be >= 2, got {args.points}")
    from pathlib import Path

    parent = Path(args.out).resolve().parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {args.out!r}: its directory {str(parent)!r} does not exist "
                         "(create it first)")
    covs = np.linspace(*PAPER_COV_RANGE, args.points)
    plot_decision_boundaries(args.out, covs=covs)
    res = decision_boundaries(covs)
    print(f"wrote {args.out}")
    print("Cov[Y,Y']   DMTL boundary   GMTL (alpha=1) boundary")
    for c, d, g in zip(res["cov"], res["dmtl"], res["gmtl"]):
        print(f"{c:+9.3f}   {d:13.6f}   {g:13.6f}")
    return 0
