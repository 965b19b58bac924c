"""Bad input to the public API: every case raises a ValueError/TypeError naming the argument,
the value and what was expected (issue 15, "The API's remaining unclear or silent cases").

Each row is ``(id, call, exception type, regex)``. The regex must match the message and name
the argument, show the offending value and say what was expected. The cases were found by
trying the public API as a new user would (wrong types, strings for numbers, NaN/inf,
negative sizes, tables too big to allocate, damaged files); before the fixes each one either
gave Python's own conversion message without the argument's name, a numpy/zipfile error,
a nonsense number, or nothing at all.
"""

from __future__ import annotations

import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import torch

from causalmtl.gmtl import (
    JointPrior,
    TemperatureScaling,
    TreePrior,
    adapt,
    decode,
    decode_structured,
    estimate_prior_em,
    gmtl_decode,
    select_alpha,
    select_smoothing_cv,
)
from causalmtl.shift import ShiftDraws, analyze, evaluate_shift, weighted_tau

PRIOR = JointPrior.from_probs([[0.4, 0.1], [0.1, 0.4]])
LP = [np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]])]
LAB = np.array([[0, 0], [1, 1], [0, 1]])
LOG_LIK = np.log(np.full((6, 2, 2), 0.25))
LAB2 = np.random.default_rng(0).integers(0, 2, (60, 2))
LP2 = [np.log(np.random.default_rng(t).dirichlet(np.ones(2), size=60)) for t in range(2)]


def _write_prior(path, **override):
    """A JointPrior archive in the documented layout, with some keys replaced or dropped."""
    keys = dict(
        format=np.array("causalmtl.JointPrior/1"),
        n_classes=np.array([2, 2], dtype=np.int64),
        probs=np.array([[0.4, 0.1], [0.1, 0.4]]),
        counts=np.empty(0),
        pseudocount=np.float64(0.0),
        n_fitted=np.int64(0),
    )
    keys.update(override)
    np.savez(path, **{k: v for k, v in keys.items() if v is not None})
    return path


def _deprecated(fn, *args, **kwargs):
    """Call a deprecated decoder with its DeprecationWarning silenced (tested in tests/gmtl)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


def _truncated(path):
    PRIOR.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _text(path):
    path.write_text("hello, not an archive\n")
    return path


def _trainer(lr):
    from causalmtl.data.base import Task
    from causalmtl.methods import ERM
    from causalmtl.nn import MLPEncoder, SharedTrunk, seeded
    from causalmtl.train import Trainer

    with seeded(0):
        model = SharedTrunk(MLPEncoder(3, (4,)), (Task("a", n_classes=2), Task("b", n_classes=2)))
    return Trainer(ERM(model), lr=lr)


def _classifier(**params):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    from causalmtl import GMTLClassifier

    X = np.random.default_rng(0).normal(size=(60, 2))
    return GMTLClassifier(MultiOutputClassifier(LogisticRegression()), **params).fit(X, LAB2)


# (id, call(tmp_path), exception, regex naming argument + value + expectation)
CASES = [
    # --- a dense joint table that cannot (or should not) be allocated -------------------------
    ("fit-20-tasks-of-10", lambda p: JointPrior.fit(np.zeros((3, 20), int), [10] * 20), ValueError,
     r"n_classes=\(10, 10, .*10\) needs a dense joint table of .* cells .*max_cells=16,777,216.*TreePrior"),
    ("fit-40-tasks-of-10", lambda p: JointPrior.fit(np.zeros((3, 40), int), [10] * 40), ValueError,
     r"n_classes=\(10, .*cells.*max_cells.*TreePrior"),
    ("fit-40-binary", lambda p: JointPrior.fit(np.zeros((3, 40), int), [2] * 40), ValueError,
     r"n_classes=\(2, .*1,099,511,627,776 cells.*8,192\.0 GiB.*max_cells=16,777,216.*TreePrior"),
    ("fit-27-binary", lambda p: JointPrior.fit(np.zeros((3, 27), int), [2] * 27), ValueError,
     r"134,217,728 cells \(1\.0 GiB per float64 copy\), more than max_cells=16,777,216.*TreePrior"),
    ("uniform-30-binary", lambda p: JointPrior.uniform([2] * 30), ValueError,
     r"n_classes=\(2, .*1,073,741,824 cells.*max_cells.*TreePrior"),
    ("fit-max_cells-str", lambda p: JointPrior.fit(LAB, (2, 2), max_cells="big"), TypeError,
     r"max_cells must be an int >= 1, got the str 'big'"),
    # --- JointPrior files -----------------------------------------------------------------------
    ("load-nan-probs", lambda p: JointPrior.load(_write_prior(p / "nan.npz", probs=np.array([[np.nan, 0.5], [0.25, 0.25]]))),
     ValueError, r"nan\.npz': probs contains non-finite values .*nan.* at index \(0, 0\); expected probabilities"),
    ("load-negative-probs", lambda p: JointPrior.load(_write_prior(p / "neg.npz", probs=np.array([[-0.1, 0.6], [0.25, 0.25]]))),
     ValueError, r"neg\.npz': probs has a negative entry .*-0\.1.* at index \(0, 0\)"),
    ("load-probs-sum-2", lambda p: JointPrior.load(_write_prior(p / "sum.npz", probs=np.full((2, 2), 0.5))),
     ValueError, r"sum\.npz': probs must sum to 1 \(within 1e-06\), sums to 2\.0"),
    ("load-truncated", lambda p: JointPrior.load(_truncated(p / "cut.npz")), ValueError,
     r"cut\.npz' is not a JointPrior file \(expected a \.npz archive written by JointPrior\.save"),
    ("load-missing-keys", lambda p: JointPrior.load(_write_prior(p / "keys.npz", probs=None, n_fitted=None)),
     ValueError, r"keys\.npz': JointPrior file lacks the keys \['probs', 'n_fitted'\]"),
    ("load-text-file", lambda p: JointPrior.load(_text(p / "t.npz")), ValueError,
     r"t\.npz' is not a JointPrior file"),
    ("load-directory", lambda p: JointPrior.load(p), ValueError,
     r"is a directory, expected a JointPrior \.npz file"),
    ("load-wrong-format", lambda p: JointPrior.load(_write_prior(p / "f.npz", format=np.array("other/1"))),
     ValueError, r"f\.npz' is not a JointPrior file \(format 'other/1', expected 'causalmtl\.JointPrior/1'\)"),
    ("load-bad-n_classes", lambda p: JointPrior.load(_write_prior(p / "n.npz", n_classes=np.array([1, 4]))),
     ValueError, r"n\.npz': n_classes\[0\] must be an int >= 2.*got 1"),
    ("load-missing-file", lambda p: JointPrior.load(p / "nofile.npz"), FileNotFoundError,
     r"JointPrior file '.*nofile\.npz' does not exist"),
    # --- numbers given as strings / None ---------------------------------------------------------
    ("fit-pseudocount-str", lambda p: JointPrior.fit(LAB, (2, 2), pseudocount="a"), TypeError,
     r"pseudocount must be a finite number >= 0, got the str 'a'"),
    ("fit-pseudocount-None", lambda p: JointPrior.fit(LAB, (2, 2), pseudocount=None), TypeError,
     r"pseudocount must be a finite number >= 0, got the NoneType None"),
    ("from_counts-pseudocount-str", lambda p: JointPrior.from_counts([[1, 2], [3, 4]], pseudocount="x"), TypeError,
     r"pseudocount must be a finite number >= 0, got the str 'x'"),
    ("from_counts-negative", lambda p: JointPrior.from_counts([[1, -2], [3, 4]]), ValueError,
     r"counts must be finite and non-negative, got .*-2\.0.* at index \(0, 1\)"),
    ("from_probs-atol-str", lambda p: JointPrior.from_probs(PRIOR.probs, atol="x"), TypeError,
     r"atol must be a finite number >= 0, got the str 'x'"),
    ("from_probs-strings", lambda p: JointPrior.from_probs([["a", "b"], ["c", "d"]]), TypeError,
     r"probs must be a numeric table of probabilities, got .*'a'.*dtype <U1"),
    ("marginal-task-str", lambda p: PRIOR.marginal("a"), TypeError, r"task must be an int >= 0, got the str 'a'"),
    ("marginalize-keep-str", lambda p: PRIOR.marginalize("ab"), TypeError,
     r"keep must be a sequence of task indices, got 'ab'"),
    ("gmtl_decode-alpha-str", lambda p: gmtl_decode(LP, PRIOR, alpha="a"), TypeError,
     r"alpha must be a number in \[0, 1\] or a sequence of them, got 'a'"),
    ("gmtl_decode-alpha-None-in-list", lambda p: gmtl_decode(LP, PRIOR, alpha=[0.0, None]), TypeError,
     r"alpha must be a number in \[0, 1\] or a sequence of them, got \[0\.0, None\]"),
    ("gmtl_decode-memory_mb-negative", lambda p: gmtl_decode(LP, PRIOR, alpha=0.5, memory_mb=-5), ValueError,
     r"memory_mb must be a finite number > 0, got -5"),
    ("gmtl_decode-memory_mb-str", lambda p: gmtl_decode(LP, PRIOR, alpha=0.5, memory_mb="64"), TypeError,
     r"memory_mb must be a finite number > 0, got the str '64'"),
    ("gmtl_decode-tree-memory_mb-zero", lambda p: gmtl_decode(LP, TreePrior.fit(LAB, (2, 2)), alpha=0.5, memory_mb=0),
     ValueError, r"memory_mb must be a finite number > 0, got 0"),
    ("gmtl_decode-normalized-str", lambda p: gmtl_decode(LP, PRIOR, alpha=0.5, normalized="no"), TypeError,
     r"normalized must be True or False, got the str 'no'"),
    ("gmtl_decode-log_probs-str", lambda p: gmtl_decode("abc", PRIOR, alpha=0.5), TypeError,
     r"log_probs must be an array of log-probabilities, got the str 'abc'"),
    ("gmtl_decode-log_probs-None-entry", lambda p: gmtl_decode([LP[0], None], PRIOR, alpha=0.5), TypeError,
     r"log_probs\[1\] must be an array of log-probabilities, got the NoneType None"),
    ("gmtl_decode-scores-str", lambda p: gmtl_decode(LP, PRIOR, alpha=0.5, scores="yes"), TypeError,
     r"scores must be True or False, got the str 'yes'"),
    ("gmtl_decode-marginals-int", lambda p: gmtl_decode(LP, PRIOR, alpha=0.5, marginals=2), TypeError,
     r"marginals must be True or False, got the int 2"),
    # the deprecated wrappers go through gmtl_decode's entry point, so they are checked the same way
    ("decode-deprecated-memory_mb-negative", lambda p: _deprecated(decode, LP, PRIOR, alpha=0.5, memory_mb=-5),
     ValueError, r"memory_mb must be a finite number > 0, got -5"),
    ("decode-deprecated-log_probs-str", lambda p: _deprecated(decode, "abc", PRIOR, alpha=0.5), TypeError,
     r"log_probs must be an array of log-probabilities, got the str 'abc'"),
    ("decode-deprecated-return_scores-str",
     lambda p: _deprecated(decode, LP, PRIOR, alpha=0.5, return_scores="no"), TypeError,
     r"return_scores must be True or False, got the str 'no'"),
    ("decode_structured-deprecated-memory_mb-str",
     lambda p: _deprecated(decode_structured, LP, TreePrior.fit(LAB, (2, 2)), alpha=0.5, memory_mb="64"), TypeError,
     r"memory_mb must be a finite number > 0, got the str '64'"),
    ("decode_structured-deprecated-return_marginals-str",
     lambda p: _deprecated(decode_structured, LP, PRIOR, alpha=0.5, return_marginals="no"), TypeError,
     r"return_marginals must be True or False, got the str 'no'"),
    ("select_alpha-tolerance-str", lambda p: select_alpha(LP, np.array([[0, 0]]), PRIOR, tolerance="a"), TypeError,
     r"tolerance must be a finite number >= 0, got the str 'a'"),
    ("select_alpha-main_task-str", lambda p: select_alpha(LP, np.array([[0, 0]]), PRIOR, main_task="a"), TypeError,
     r"main_task must be an int >= 0, got the str 'a'"),
    ("em-tol-str", lambda p: estimate_prior_em(LOG_LIK, PRIOR, tol="x"), TypeError,
     r"tol must be a finite number > 0, got the str 'x'"),
    ("em-max_iter-str", lambda p: estimate_prior_em(LOG_LIK, PRIOR, max_iter="x"), TypeError,
     r"max_iter must be an int >= 1, got the str 'x'"),
    ("em-max_iter-float", lambda p: estimate_prior_em(LOG_LIK, PRIOR, max_iter=2.5), ValueError,
     r"max_iter must be an int >= 1, got 2\.5"),
    ("em-smoothing-str", lambda p: estimate_prior_em(LOG_LIK, PRIOR, smoothing="x"), ValueError,
     r"smoothing.*'x'"),
    ("smoothing_cv-seed-str", lambda p: select_smoothing_cv(LOG_LIK, PRIOR, n_folds=2, seed="x"), TypeError,
     r"seed must be an int >= 0 or a numpy Generator \(or None\), got the str 'x'"),
    ("tree-random-seed-str", lambda p: TreePrior.random((2, 2, 2), seed="x"), TypeError,
     r"seed must be an int >= 0 or a numpy Generator \(or None\), got the str 'x'"),
    ("tree-random-seed-negative", lambda p: TreePrior.random((2, 2, 2), seed=-3), ValueError,
     r"seed must be an int >= 0 or a numpy Generator \(or None\), got the int -3"),
    ("tree-sample-n-str", lambda p: TreePrior.fit(LAB, (2, 2)).sample("x"), TypeError,
     r"n must be an int >= 0, got the str 'x'"),
    ("tree-fit-pseudocount-str", lambda p: TreePrior.fit(LAB, (2, 2), pseudocount="x"), TypeError,
     r"pseudocount must be a finite number >= 0, got the str 'x'"),
    ("tree-fit-threshold-str", lambda p: TreePrior.fit(LAB, (2, 2), threshold="x"), TypeError,
     r"threshold must be a finite number of nats >= 0, got the str 'x'"),
    ("calibration-l2-str", lambda p: TemperatureScaling(l2="x"), TypeError,
     r"l2 must be a finite number >= 0, got the str 'x'"),
    ("trainer-lr-str", lambda p: _trainer("1e-3"), ValueError, r"lr must be a finite number > 0, got '1e-3'"),
    ("adapt-cv_folds-str", lambda p: adapt(LP2, LAB2, LP2, PRIOR, smoothing="cv", cv_folds="x"), TypeError,
     r"n_folds must be an int with 2 <= n_folds <= N=60, got the str 'x'"),
    ("adapt-device-unknown", lambda p: adapt(LP2, LAB2, LP2, PRIOR, device="nodev"), ValueError,
     r"device must be a torch device such as 'cpu' or 'cuda', got 'nodev'"),
    ("em-device-unknown", lambda p: estimate_prior_em(LOG_LIK, PRIOR, device="gpu0"), ValueError,
     r"device must be a torch device such as 'cpu' or 'cuda', got 'gpu0'"),
    ("weighted_tau-strings", lambda p: weighted_tau([0.1, 0.2], [0.1, "a"]), TypeError,
     r"log_q must be a numeric array of log-probabilities or a JointPrior, got \[0\.1, 'a'\]"),
    ("evaluate_shift-task-str", lambda p: evaluate_shift(LAB2, np.stack([LAB2, LAB2]), PRIOR, alphas=[0, 1],
                                                         n_draws=3, task="x"), TypeError,
     r"task must be an int >= 0, got the str 'x'"),
    ("analyze-tau_range-str", lambda p: analyze(ShiftDraws(np.array([-0.5, 0.5]), np.full((2, 2), 0.5), alphas=[0, 1]),
                                                tau_range="ab"), ValueError,
     r"tau_range must be a pair \(low, high\), got 'ab'"),
    ("GMTLClassifier-alpha-grid", lambda p: _classifier(alpha=[0.0, 0.5]), ValueError,
     r"alpha must be one number in \[0, 1\], got \[0\.0, 0\.5\]; to choose among several use GMTLClassifierCV"),
    ("GMTLClassifier-pseudocount-str", lambda p: _classifier(pseudocount="1"), TypeError,
     r"pseudocount must be a finite number >= 0, got the str '1'"),
    # --- silent or misleading values ---------------------------------------------------------------
    ("labels-inf", lambda p: JointPrior.fit(np.array([[0.0, np.inf], [1, 1]]), (2, 2)), ValueError,
     r"labels\[0, 1\] = .*inf.* is not a class label; expected an int in \[-1, 2\) for task 1"),
    ("labels-minus-inf", lambda p: TreePrior.fit(np.array([[0.0, 1], [-np.inf, 1]]), (2, 2)), ValueError,
     r"labels\[1, 0\] = .*-inf.* is not a class label"),
    ("shiftdraws-nan-accuracy", lambda p: ShiftDraws(np.array([-0.5, 0.5, 0.1]),
                                                     np.array([[0.4, 0.5], [0.5, np.nan], [0.4, 0.5]]), alphas=[0, 1]),
     ValueError, r"accuracy must be finite, got nan at draw 1, alpha=1"),
    ("shiftdraws-inf-tau", lambda p: ShiftDraws(np.array([-np.inf, 0.5]), np.full((2, 2), 0.5), alphas=[0, 1]),
     ValueError, r"tau must be finite \(a severity in \[-1, 1\]\), got -inf at draw 0"),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, pattern, tmp_path):
    with pytest.raises(exc, match=pattern) as info:
        call(tmp_path)
    assert not isinstance(info.value, (zipfile.BadZipFile, KeyError, MemoryError))


def test_the_table_covers_the_issue():
    assert len(CASES) >= 31
    assert len({c[0] for c in CASES}) == len(CASES)


def test_oversized_joint_prior_is_refused_before_allocating():
    """27 binary tasks used to take 2.4 GB silently; now nothing is allocated."""
    labels = np.zeros((5, 27), dtype=np.int64)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="TreePrior"):
        JointPrior.fit(labels, [2] * 27)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, peak
    assert elapsed < 0.5
    # the documented alternative fits the same labels
    assert TreePrior.fit(labels, [2] * 27).n_tasks == 27


def test_cell_budget_boundary_is_inclusive():
    assert JointPrior.fit(LAB, (2, 2), max_cells=4).size == 4
    assert JointPrior.uniform((2, 3), max_cells=6).size == 6
    with pytest.raises(ValueError, match=r"Π C_t = 4 cells .*more than max_cells=3"):
        JointPrior.fit(LAB, (2, 2), max_cells=3)


def test_valid_prior_files_still_load(tmp_path):
    prior = JointPrior.fit(LAB, (2, 2), pseudocount=0.5)
    prior.save(tmp_path / "ok.npz")
    back = JointPrior.load(tmp_path / "ok.npz")
    np.testing.assert_array_equal(back.probs, prior.probs)
    np.testing.assert_array_equal(back.counts, prior.counts)
    assert (back.pseudocount, back.n_fitted) == (0.5, 3)


def test_numbers_of_other_numeric_types_are_still_accepted():
    assert JointPrior.fit(LAB, (2, 2), pseudocount=np.float32(0.5)).pseudocount == 0.5
    assert JointPrior.fit(LAB, (2, 2), pseudocount=1).pseudocount == 1.0
    assert gmtl_decode(LP, PRIOR, alpha=np.float64(0.5), memory_mb=np.int64(1)).labels.shape == (1, 2)
    assert gmtl_decode(LP, PRIOR, alpha=0.5, normalized=np.bool_(True), scores=np.bool_(True)).labels.shape == (1, 2)
    assert _deprecated(decode, LP, PRIOR, alpha=0.5, normalized=np.bool_(True)).shape == (1, 2)
    assert TreePrior.random((2, 2), seed=np.random.default_rng(0)).n_tasks == 2


def test_dann_runs_on_a_float64_model_and_discriminator():
    """DANN cast the features to float32 (``.float()``), which broke a float64 method."""
    from causalmtl.data.base import Task
    from causalmtl.methods import DANN, Batch
    from causalmtl.nn import MLPEncoder, SharedTrunk, seeded

    def batch(n, env):
        gen = torch.Generator().manual_seed(env)
        x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
        y = torch.stack([torch.randint(0, 2, (n,), generator=gen)] * 2, 1).double()
        return Batch(x, y, torch.full((n,), env, dtype=torch.long))

    with seeded(0):
        method = DANN(SharedTrunk(MLPEncoder(5, (8,)), (Task("a", n_classes=2), Task("b", n_classes=2)))).double()
    loss, _ = method.objective([batch(8, 0), batch(8, 1)])
    loss.backward()
    assert loss.dtype == torch.float64 and torch.isfinite(loss)
    assert method.discriminator[-1].weight.grad is not None
