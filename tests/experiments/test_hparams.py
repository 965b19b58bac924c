import pandas as pd
import pytest

from causalmtl.experiments import hparams as hp


def test_trial_zero_is_documented_defaults():
    assert hp.sample("mtcrl-var", "digits", 0) == hp.defaults("mtcrl")
    assert hp.defaults("irm")["lambda"] == hp.REGISTRY["irm"]["lambda"].default


def test_random_search_is_deterministic_and_seed_free():
    a = hp.sample("irm", "digits", 3)
    assert a == hp.sample("irm", "digits", 3)  # same draw every call / process
    assert a != hp.sample("irm", "digits", 4)
    assert a != hp.sample("irm", "multi-sem", 3)
    assert set(a) == set(hp.REGISTRY["irm"])
    assert 1e-4 <= a["lr"] <= 1e-2
    assert hp.sample("irm", "digits", 3, lr=0.5)["lr"] == 0.5


def test_unknown_method_and_bad_trial():
    with pytest.raises(ValueError, match="unknown method"):
        hp.sample("nonsense")
    with pytest.raises(ValueError, match="trial"):
        hp.sample("mtl", trial=-1)


def test_selection_uses_validation_only():
    rows = []
    # trial 1 is best on valid, trial 0 on test: selection must pick trial 1
    for trial, valid, test in ((0, 0.70, 0.95), (1, 0.80, 0.60)):
        for seed in (0, 1):
            rows.append({"method": "mtl", "trial": trial, "seed": seed, "name": "acc_mean", "split": "valid", "value": valid})
            rows.append({"method": "mtl", "trial": trial, "seed": seed, "name": "acc_mean", "split": "test", "value": test})
    frame = pd.DataFrame(rows)
    best = hp.select_best_trial(frame, "acc_mean")
    assert best == {("mtl",): 1}
    kept = hp.keep_best_trials(frame, best)
    assert set(kept["trial"]) == {1} and len(kept) == 4
    # lower-is-better metrics pick the minimum
    assert hp.select_best_trial(frame, "acc_mean", higher_is_better=False) == {("mtl",): 0}
