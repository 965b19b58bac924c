"""Benchmark: GMTL without an oracle (issue 11) — EM speed and recovery of the oracle-q gain.

Prints, from one run:

1. EM / MLLS speed on 20,000 examples × 6,400 joint cells (target < 10 s).
2. Simulated scores (T binary tasks, Ising-chain prior, logistic-regression heads that leak
   the other tasks' evidence): shifts that flip or remove the strongest correlations, and no
   shift. For each likelihood: accuracy of DMTL, oracle-q GMTL, estimated-q GMTL, GMTL at
   the oracle-best single α and at the label-free α(τ̂); L1(q̂, q); fraction of the oracle-q
   gain recovered (target ≥ 90 % with L1 ≤ 0.3; no shift: loses ≤ 0.6 points vs DMTL).
3. Multi-Digits (two 10-class digits, train agreement m = 0.9) with test tables that remove
   or move the agreement; the unlabeled test split itself is the EM input.
4. Yeast (scikit-learn per-label logistic regressions) on its 6 most frequent labels.
5. Tree-structured q̂ (structured EM, M-step refits the Chow–Liu edge marginals): Yeast with
   all 14 labels and simulated scores with T = 10; targets ≥ 75 % recovered, edge L1 ≤ 0.12.

Methods: ``score`` = generative score model with the default smoothing λ = K; ``score-lam0``
the unsmoothed MLE; ``score-lamN`` λ = N; ``score-cv`` λ chosen by 5-fold held-out likelihood
of the unlabeled scores with a fall-back to q̂ = p (``smoothing="cv"``); ``cal-*`` calibrated heads in Π_t p(y_t|x)/p(y).

Usage: ``python benchmarks/bench_unknown_q.py [--quick] [--device cpu|cuda] [--data DIR]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import warnings

import numpy as np

from causalmtl.gmtl import JointPrior, adapt, estimate_prior_em, gmtl_decode
from causalmtl.shift.unknown_q import (
    correlation_shift,
    evaluate_unknown_q,
    oracle_gain_recovered,
    q_error,
)

METHODS = {
    "score": {"likelihood": "score", "calibration": None},
    "score+pairs": {"likelihood": "score", "calibration": None, "interactions": True},
    "cal-bcts": {"likelihood": "calibrated", "calibration": "bcts"},
    "cal-cross": {"likelihood": "calibrated", "calibration": "cross"},
    "score-lam0": {"likelihood": "score", "calibration": None, "smoothing": 0.0},
    "score-lamN": {"likelihood": "score", "calibration": None, "smoothing": "N"},
    "score-cv": {"likelihood": "score", "calibration": None, "smoothing": "cv"},
}


def kw(method: str, n: int) -> dict:
    """The adapt() arguments of a method; smoothing "N" means λ = N (prior weighs as much as the data)."""
    out = dict(METHODS[method])
    if out.get("smoothing") == "N":
        out["smoothing"] = float(n)
    return out


def bench_em_speed(device: str, repeats: int) -> None:
    print("== 1. EM speed: N = 20,000 examples x K = 6,400 joint cells (float64) ==")
    rng = np.random.default_rng(0)
    K, N, d = 6400, 20000, 8
    means = rng.normal(size=(K, d)) * 2.0
    q = rng.dirichlet(np.full(K, 0.5))
    y = rng.choice(K, size=N, p=q)
    x = means[y] + rng.normal(size=(N, d))
    ll = x @ means.T - 0.5 * (means**2).sum(1)[None]
    p = np.full(K, 1.0 / K)
    for lam, label, reps in ((float(K), "MAP (smoothing K, default)", repeats), (0.0, "MLE (smoothing 0)", 1)):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            res = estimate_prior_em(ll, p, smoothing=lam, device=device)
            times.append(time.perf_counter() - t0)
        print(
            f"  {label:27s} median {np.median(times):6.2f} s over {reps} run(s)  steps {res.n_iter:4d}  "
            f"{1e3 * np.median(times) / res.n_iter:5.0f} ms/step  converged {res.converged}  "
            f"L1(q^, q) {np.abs(res.q - q).sum():.3f}"
        )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_prior_em(ll, p, smoothing=0.0, device=device, accelerate=False, max_iter=30)
    dt = time.perf_counter() - t0
    print(f"  plain EM (no SQUAREM): {dt / res.n_iter * 1e3:.1f} ms per step (setup included, 30 steps)")


def ising(T: int, J: np.ndarray, h: np.ndarray) -> np.ndarray:
    grid = np.array(list(itertools.product([0, 1], repeat=T)))
    s = 2 * grid - 1
    e = np.einsum("kt,tu,ku->k", s, J, s) / 2 + s @ h
    p = np.exp(e - e.max())
    return (p / p.sum()).reshape((2,) * T)


def simulated(T: int, seed: int, n_pool: int) -> tuple:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    J = np.zeros((T, T))
    for t in range(T - 1):
        J[t, t + 1] = J[t + 1, t] = 0.8
    h = rng.normal(0, 0.2, T)
    p_true = ising(T, J, h)
    K = 2**T
    A = np.zeros((2 * T, T))
    for t in range(T):
        A[2 * t, t], A[2 * t + 1, t] = 1.0, 0.5

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        yi = rng.choice(K, size=n, p=p_true.reshape(-1))
        y = np.stack(np.unravel_index(yi, (2,) * T), 1)
        return (2 * y - 1) @ A.T + rng.normal(size=(n, 2 * T)), y

    xtr, ytr = draw(20000)
    heads = [LogisticRegression(max_iter=1000).fit(xtr, ytr[:, t]) for t in range(T)]

    def lp(x: np.ndarray) -> list[np.ndarray]:
        return [hd.predict_log_proba(x) for hd in heads]

    xv, yv = draw(5000)
    xp, yp = draw(n_pool)
    prior = JointPrior.fit(ytr, (2,) * T, pseudocount=1.0)
    return lp(xv), yv, lp(xp), yp, prior


def row(name: str, r: dict) -> str:
    return (
        f"  {name:12s} DMTL {r['acc_dmtl']:.4f}  oracle-q {r['acc_oracle_q']:.4f}  est-q {r['acc_est_q']:.4f}  "
        f"best-a {r['acc_best_alpha']:.4f} (a={r['best_alpha']:.1f})  a(tau) {r['acc_alpha_tau']:.4f} "
        f"(a={r['alpha_tau']:.2f})  L1 {r['l1']:.3f} (p: {r['l1_prior']:.3f})  recovered {100 * r['recovered']:6.1f} %"
        + (
            f"  cv: lam/N {r['cv_ratio']:g} gain {r['cv_gain']:.4f} nats/row z {r['cv_z']:.1f}"
            f"{' FALLBACK' if r['fallback'] else ''}"
            if "cv_ratio" in r
            else ""
        )
    )


def bench_simulated(quick: bool, methods: list[str]) -> None:
    print("\n== 2. Simulated scores (Ising-chain prior, leaky logistic heads), n_unlabeled = 5,000 ==")
    for T in (4, 6) if quick else (4, 6, 8):
        vlp, vy, plp, py, prior = simulated(T, seed=T, n_pool=30000 if quick else 60000)
        for shift in ("flip", "remove", "none"):
            q = prior if shift == "none" else correlation_shift(prior, n_pairs=max(1, T // 2), mode=shift)
            print(f" T={T} K={2**T} shift={shift} ({max(1, T // 2)} strongest pairs)")
            for m in methods:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = evaluate_unknown_q(vlp, vy, plp, py, prior, q, n_unlabeled=5000, seed=1, **kw(m, 5000))
                line = row(m, r)
                if shift == "none":
                    line += f"  est-q - DMTL {100 * (r['acc_est_q'] - r['acc_dmtl']):+.2f} pts"
                print(line + f"  [{time.perf_counter() - t0:.1f} s]")
            print(bbse_line(vlp, vy, plp, py, prior, q, 5000, seed=1))


def bbse_line(vlp: list, vy: np.ndarray, plp: list, py: np.ndarray, prior: JointPrior, q: JointPrior,
              n: int, seed: int) -> str:  # fmt: skip
    """BBSE baseline on the same resampled unlabeled set (hard DMTL predictions)."""
    from causalmtl.gmtl import bbse
    from causalmtl.shift.unknown_q import importance_resample, shifted_accuracy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, q_eff = importance_resample(py, q, n, seed)
        val_pred = gmtl_decode(vlp, prior, alpha=0.0).labels
        test_pred = gmtl_decode([x[idx] for x in plp], prior, alpha=0.0).labels
        res = bbse(val_pred, vy, test_pred, prior.n_classes)
        q_hat = res.q + 1e-12
        q_hat /= q_hat.sum()
        acc = shifted_accuracy(gmtl_decode(plp, prior, q=q_hat).labels, py, q_eff)
        acc_dmtl = shifted_accuracy(gmtl_decode(plp, prior, alpha=0.0).labels, py, q_eff)
        acc_or = shifted_accuracy(gmtl_decode(plp, prior, q=q_eff).labels, py, q_eff)
    return (
        f"  {'BBSE':12s} DMTL {acc_dmtl:.4f}  oracle-q {acc_or:.4f}  est-q {acc:.4f}  L1 {q_error(res.q, q_eff)['l1']:.3f}  "
        f"recovered {100 * oracle_gain_recovered(acc, acc_or, acc_dmtl):6.1f} %  cond(C) {res.condition_number:.3g}  "
        f"clipped {res.n_clipped}/{res.q.size}"
    )


def bench_digits(quick: bool, methods: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression

    from causalmtl.data.digits import biased_joint, make_multi_digits

    print("\n== 3. Multi-Digits (train agreement m = 0.9; the unlabeled test split feeds EM) ==")
    p_table = biased_joint(10, 0.9)
    shifts = {
        "remove (uniform)": np.full((10, 10), 0.01),
        "move (y'=y+1)": (0.9 * np.roll(np.eye(10), 1, axis=1) + 0.01) / 10,
        "none": p_table,
    }
    n_train = 4000 if quick else 10000
    for name, q in shifts.items():
        splits = make_multi_digits(
            "biased", n_train=n_train, n_valid=2000, n_test=3000, m=0.9, test_joint=q, seed=0
        )
        flat = lambda s: s.inputs.reshape(len(s.inputs), -1)  # noqa: E731
        xtr, ytr = flat(splits.train), splits.train.targets
        heads = [LogisticRegression(max_iter=300, C=0.5).fit(xtr, ytr[:, t]) for t in range(2)]
        lp = lambda x, hs=heads: [hd.predict_log_proba(x) for hd in hs]  # noqa: E731
        vlp, vy = lp(flat(splits.valid)), splits.valid.targets
        tlp, ty = lp(flat(splits.test)), splits.test.targets
        prior = JointPrior.fit(ytr, (10, 10), pseudocount=1.0)
        qn = q / q.sum()
        acc = lambda pred, yt=ty: float((np.asarray(pred) == yt).mean())  # noqa: E731
        a_dmtl = acc(gmtl_decode(tlp, prior, alpha=0.0).labels)
        a_oracle = acc(gmtl_decode(tlp, prior, q=qn).labels)
        grid = gmtl_decode(tlp, prior, alpha=list(np.linspace(0, 1, 11))).labels
        a_best = max(acc(g) for g in grid)
        print(f" shift={name}: DMTL {a_dmtl:.4f}  oracle-q {a_oracle:.4f}  best single a {a_best:.4f}")
        for m in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = adapt(vlp, vy, tlp, prior, **kw(m, len(ty)))
            a_est = acc(res.labels)
            rec = oracle_gain_recovered(a_est, a_oracle, a_dmtl)
            print(
                f"  {m:12s} est-q {a_est:.4f}  a(tau) {acc(res.alpha_labels):.4f} (a={res.alpha:.2f})  "
                f"L1 {q_error(res.q_hat, qn)['l1']:.3f}  recovered {100 * rec:6.1f} %  "
                f"est-q - DMTL {100 * (a_est - a_dmtl):+.2f} pts  [{time.perf_counter() - t0:.1f} s]"
            )


def bench_yeast(data: str | None, methods: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression

    from causalmtl.data.yeast import read_yeast

    print("\n== 4. Yeast (6 most frequent labels, per-label logistic regression) ==")
    try:
        x, y = read_yeast(data)
    except (ValueError, OSError) as exc:
        print(f"  skipped: {exc}")
        return
    keep = np.argsort(-y.mean(0))[:6]
    y = y[:, keep]
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    tr, va, po = perm[:1000], perm[1000:1500], perm[1500:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-12
    x = (x - mu) / sd
    heads = [LogisticRegression(max_iter=2000, C=0.1).fit(x[tr], y[tr, t]) for t in range(6)]
    lp = lambda idx: [hd.predict_log_proba(x[idx]) for hd in heads]  # noqa: E731
    n_classes = (2,) * 6
    prior = JointPrior.fit(y[tr], n_classes, pseudocount=1.0)
    print(f"  labels {[f'Class{k + 1}' for k in keep]}; train 1000, valid 500, pool {len(po)}")
    for shift in ("flip", "remove", "none"):
        q = prior if shift == "none" else correlation_shift(prior, n_pairs=3, mode=shift)
        print(f" shift={shift} (3 strongest pairs), n_unlabeled = {len(po)}")
        for m in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = evaluate_unknown_q(
                    lp(va), y[va], lp(po), y[po], prior, q, n_unlabeled=len(po), seed=2, **kw(m, len(po))
                )
            line = row(m, r)
            if shift == "none":
                line += f"  est-q - DMTL {100 * (r['acc_est_q'] - r['acc_dmtl']):+.2f} pts"
            print(line + f"  [{time.perf_counter() - t0:.1f} s]")


def bench_tree(data: str | None, quick: bool) -> None:
    from sklearn.linear_model import LogisticRegression

    from causalmtl.data.yeast import read_yeast
    from causalmtl.gmtl import TreePrior

    print("\n== 5. Tree-structured q^ (structured EM on the Chow-Liu tree of the training labels) ==")
    cases = []
    vlp, vy, plp, py, prior = simulated(10, seed=10, n_pool=20000)
    cases.append(("simulated T=10", vlp, vy, plp, py, prior.n_classes, None, 5000))
    try:
        x, y = read_yeast(data)
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(x))
        tr, va, po = perm[:1000], perm[1000:1500], perm[1500:]
        x = (x - x[tr].mean(0)) / (x[tr].std(0) + 1e-12)
        heads = [LogisticRegression(max_iter=2000, C=0.1).fit(x[tr], y[tr, t]) for t in range(14)]
        lp = lambda idx: [hd.predict_log_proba(x[idx]) for hd in heads]  # noqa: E731
        cases.append(("Yeast T=14", lp(va), y[va], lp(po), y[po], (2,) * 14, y[tr], len(po)))
    except (ValueError, OSError) as exc:
        print(f"  Yeast skipped: {exc}")
    for name, vlp, vy, plp, py, n_classes, ytr, n_unl in cases:
        train_labels = ytr if ytr is not None else vy
        tree = TreePrior.fit(train_labels, n_classes, pseudocount=1.0)
        full = tree.to_joint()
        for shift in ("flip", "remove", "none"):
            mi = tree.mutual_info
            order = np.argsort([-(mi[a, b] if mi is not None else 0.0) for a, b in tree.edges], kind="stable")
            pairs = [tree.edges[k] for k in order[:3]]  # the 3 strongest edges of the tree
            q = full if shift == "none" else correlation_shift(full, mode=shift, pairs=pairs)
            for m, kwargs in (("score", {}), ("score-lam0", {"smoothing": 0.0}), ("score-cv", {"smoothing": "cv"})):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = evaluate_unknown_q(vlp, vy, plp, py, tree, q, n_unlabeled=n_unl, seed=3,
                                           likelihood="score", **kwargs)  # fmt: skip
                line = row(f"{m}", r) + f"  edge-L1 {r['edge_l1']:.3f}"
                if shift == "none":
                    line += f"  est-q - DMTL {100 * (r['acc_est_q'] - r['acc_dmtl']):+.2f} pts"
                if m == "score":
                    print(f" {name} shift={shift} (3 strongest tree edges)")
                print(line + f"  [{time.perf_counter() - t0:.1f} s]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller settings")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=os.environ.get("CAUSALMTL_DATA", "/work/shared/data"))
    ap.add_argument("--sections", default="12345")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    methods = args.methods.split(",")
    if "1" in args.sections:
        bench_em_speed(args.device, repeats=1 if args.quick else 3)
    if "2" in args.sections:
        bench_simulated(args.quick, methods)
    if "3" in args.sections:
        bench_digits(args.quick, methods)
    if "4" in args.sections:
        bench_yeast(args.data, methods)
    if "5" in args.sections:
        bench_tree(args.data, args.quick)


if __name__ == "__main__":
    main()
