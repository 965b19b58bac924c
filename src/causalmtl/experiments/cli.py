"""Subcommands ``causalmtl run``, ``causalmtl list`` and ``causalmtl report``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run an experiment (default: quickstart) and write its report",
        description=(
            "Run a named experiment into an output directory holding a results database; "
            "finished runs are skipped, interrupted ones redone. `all` runs every experiment "
            "(skipping those whose data files are absent)."
        ),
    )
    run.add_argument("experiment", nargs="?", default=None,
                     help="experiment name (see `causalmtl list`), or `all`; default: quickstart")
    run.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                     metavar="KEY=VALUE", help="config overrides with dotted keys, e.g. --set epochs=3")
    run.add_argument("--preset", default=None, help="a named size preset of the experiment (e.g. tiny)")
    run.add_argument("--seeds", default="1", help="number of seeds N (0..N-1) or a list like 0,3,7 (default 1)")
    run.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    run.add_argument("--out", default="runs", help="output directory (default ./runs)")
    run.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    run.add_argument("--threads", type=int, default=1,
                     help="torch threads per worker (default 1: fastest for these small models); recorded "
                          "with each run, and one output directory keeps one count (see --force)")
    run.add_argument("--force", action="store_true",
                     help="accept an output directory holding a different config of this experiment, or "
                          "runs of it computed with another --threads")
    run.add_argument("--tensorboard", default=None, metavar="DIR",
                     help="log every training to TensorBoard under DIR/<experiment>/<run id> "
                          "(needs the extra: pip install 'causalmtl[tensorboard]')")
    run.add_argument("--no-report", action="store_true", help="do not rebuild the report afterwards")
    run.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    run.add_argument("--launcher", choices=("local", "slurm"), default="local",
                     help="local (here; data-parallel under torchrun) or slurm (one submitit job per run); "
                          "see docs/scaling.md")
    run.add_argument("--resources", default=None, metavar="FILE.yaml",
                     help="--launcher slurm: job resources (partition, gpus_per_node, timeout_min, ...)")
    run.add_argument("--cluster", dest="cluster_overrides", nargs="+", action="extend", default=[],
                     metavar="KEY=VALUE", help="--launcher slurm: resource overrides, e.g. --cluster gpus_per_node=8")
    run.set_defaults(func=_run)

    lst = subparsers.add_parser("list", help="list experiments with their expected run time")
    lst.set_defaults(func=_list)

    rep = subparsers.add_parser("report", help="(re)build the HTML and Markdown report of a directory")
    rep.add_argument("dir", nargs="?", default="runs", help="output directory (default ./runs)")
    rep.set_defaults(func=_report)


def _run(args: argparse.Namespace) -> int:
    from . import registry
    from .config import to_yaml
    from .launchers import launch, load_resources
    from .runner import resolve_config

    if args.launcher != "slurm" and (args.resources or args.cluster_overrides):
        raise ValueError("--resources and --cluster apply to --launcher slurm only")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1 (torch threads per worker), got {args.threads}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    resources = load_resources(args.resources, args.cluster_overrides) if args.launcher == "slurm" else None
    name = args.experiment or registry.DEFAULT_EXPERIMENT
    names = registry.names() if name == "all" else [name]
    status = 0
    for exp_name in names:
        exp = registry.get(exp_name)
        if args.show_config:
            print(f"# {exp_name}")
            print(to_yaml(resolve_config(exp, args.overrides, args.preset)), end="")
            continue
        if args.launcher == "local":  # refuse what can never run before announcing anything
            from .runner import check_device, plan_sweep, prepare_out

            check_device(args.device)
            try:
                plan_sweep(exp_name, args.overrides, args.preset, args.seeds)
            except registry.MissingDataError as exc:
                hinted = _cli_data_hint(exc, exp)
                if len(names) == 1:
                    raise hinted from None
                print(f"causalmtl run: skipping {exp_name}: {hinted}", file=sys.stderr)
                continue
            prepare_out(args.out)
        print(f"causalmtl run {exp_name}: {exp.description} (expected about "
              f"{registry.format_seconds(exp.expected_seconds)} on 2 CPU cores per seed)", file=sys.stderr)
        try:
            summary = launch(
                args.launcher, exp_name, args.overrides, seeds=args.seeds, workers=args.workers, out=args.out,
                device=args.device, force=args.force, preset=args.preset, progress=sys.stderr.isatty(),
                threads=args.threads, resources=resources, tensorboard=args.tensorboard,
            )
        except registry.MissingDataError as exc:
            if len(names) == 1:
                raise
            print(f"causalmtl run: skipping {exp_name}: {exc}", file=sys.stderr)
            continue
        status = max(status, _print_summary(exp_name, summary, args.out))
    from ..train.distributed import is_main_process

    if not args.show_config and not args.no_report and is_main_process():  # rank 0 under torchrun
        from .report import build_report

        paths = build_report(args.out)
        print(f"report: {paths['html']} and {paths['markdown']}", file=sys.stderr)
    return status


#: Config keys (by leaf name) that name a data file or directory.
DATA_PATH_KEYS = ("path", "data_dir", "yeast_path", "table_path")


def _cli_data_hint(exc: Exception, exp: Any) -> Exception:
    """The missing-data error in the CLI's words: ``--set data.path=DIR`` instead of ``path=...``."""
    from .config import valid_keys

    keys = [k for k in valid_keys(exp.config_cls) if k.rsplit(".", 1)[-1] in DATA_PATH_KEYS]
    if not keys:
        return exc
    option = " or ".join(f"--set {k}=..." for k in keys[:2])
    msg = str(exc)
    if "pass path=..." in msg or "pass data_dir=..." in msg:
        msg = msg.replace("pass path=...", f"pass {option}").replace("pass data_dir=...", f"pass {option}")
    else:
        msg += f" (give the location with {option} or ${'{'}CAUSALMTL_DATA{'}'})"
    try:
        return type(exc)(msg)
    except TypeError:  # pragma: no cover - an exception class with another signature
        return ValueError(msg)


def _print_summary(name: str, summary: Any, out: str) -> int:
    """The end-of-sweep lines; returns the exit status (0 complete, 1 failed/interrupted, 3 held elsewhere)."""
    done = summary.counts.get("done", 0)
    total = sum(summary.counts.values())
    print(f"{name}: {done}/{total} runs done in {out} ({summary.seconds:.1f} s this call)", file=sys.stderr)
    status = 0
    config_failed = set(summary.failed_config)
    fixable = [f for f in summary.failed if f in config_failed]
    transient = [f for f in summary.failed if f not in config_failed]
    if fixable:
        print(f"{name}: {len(fixable)} run(s) failed with an error a rerun will not fix "
              f"({', '.join(fixable[:5])}): {summary.first_error}; fix the config or data first "
              "(full errors are in the database)", file=sys.stderr)
        status = 1
    if transient:
        print(f"{name}: {len(transient)} run(s) failed ({', '.join(transient[:5])}); rerun to retry "
              "(errors are in the database)", file=sys.stderr)
        status = 1
    if summary.interrupted:
        print(f"{name}: {summary.interrupted} run(s) were interrupted; rerun to complete them", file=sys.stderr)
        status = 1
    if summary.claimed_elsewhere:
        held = summary.claimed_elsewhere
        who = sorted({f"{c.host}:{c.pid}" for c in held})
        age = max((c.heartbeat_age or 0.0) for c in held)
        print(f"{name}: {len(held)} run(s) are still running in other live process(es) ({', '.join(who[:5])}; "
              f"last heartbeat {age:.0f} s ago); rerun when they end (a claim whose heartbeat stops "
              "is taken over after its lease, $CAUSALMTL_LEASE_S, default 300 s)", file=sys.stderr)
        status = max(status, 3)
    if len(summary.threads) > 1:
        print(f"{name}: finished runs in {out} mix torch thread counts {summary.threads} (--force); "
              "results can differ in the last digits between them", file=sys.stderr)
    return status


def _list(args: argparse.Namespace) -> int:
    from . import registry

    rows = [(e.name, registry.format_seconds(e.expected_seconds), e.description) for e in registry.all_experiments()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'experiment':<{w0}}  {'time/seed':<{w1}}  description")
    for n, t, d in rows:
        star = " (default)" if n == registry.DEFAULT_EXPERIMENT else ""
        print(f"{n:<{w0}}  {t:<{w1}}  {d}{star}")
    print("\nexpected times are for the default config, one seed, 2 idle CPU cores (busy cores: up to 4x longer)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import build_report

    paths = build_report(args.dir)
    print(f"report: {paths['html']} and {paths['markdown']}")
    return 0
