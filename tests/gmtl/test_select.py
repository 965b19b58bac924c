import numpy as np
import pytest

from causalmtl.gmtl import JointPrior, gmtl_decode, select_alpha


def make_validation(seed=0, n=400):
    rng = np.random.default_rng(seed)
    p = np.array([[0.4, 0.1], [0.1, 0.4]])
    y = np.stack(np.unravel_index(rng.choice(4, size=n, p=p.reshape(-1)), (2, 2)), axis=1)
    lp = []
    for t in range(2):
        logit = (2 * y[:, t] - 1) * 0.8 + rng.normal(size=n)
        l1 = -np.logaddexp(0, -logit)
        lp.append(np.stack([l1 - logit, l1], axis=1))
    return lp, y, JointPrior.from_probs(p)


def test_curve_matches_direct_decoding_and_largest_acceptable_alpha_is_chosen():
    lp, y, prior = make_validation()
    grid = np.linspace(0, 1, 11)
    sel = select_alpha(lp, y, prior, alphas=grid, tolerance=0.02)
    direct = [float((gmtl_decode(lp, prior, alpha=a).labels[:, 0] == y[:, 0]).mean()) for a in grid]
    np.testing.assert_allclose(sel.curve["metric"], direct)
    assert sel.reference == direct[0]
    ok = [a for a, m in zip(grid, direct) if m >= direct[0] - 0.02 - 1e-12]
    assert sel.alpha == pytest.approx(max(ok))
    # in distribution the curve falls with α, so a tight tolerance must pick a smaller α
    assert direct[-1] < direct[0]
    tight = select_alpha(lp, y, prior, alphas=grid, tolerance=0.0)
    assert tight.alpha <= sel.alpha
    assert (tight.curve.loc[tight.curve.alpha == tight.alpha, "metric"] >= direct[0] - 1e-12).all()


def test_relative_mode_and_loss_metric():
    lp, y, prior = make_validation(1)
    sel = select_alpha(lp, y, prior, tolerance=0.05, mode="relative")
    assert sel.threshold == pytest.approx(sel.reference * 0.95)
    err = select_alpha(
        lp, y, prior, tolerance=0.03, metric=lambda t, p: float((t != p).mean()), higher_is_better=False
    )
    assert err.threshold == pytest.approx(err.reference + 0.03)
    assert (err.curve.loc[err.curve.acceptable, "metric"] <= err.threshold + 1e-12).all()
    assert err.curve.loc[err.curve.alpha == err.alpha, "acceptable"].item()


def test_missing_main_task_labels_are_ignored():
    lp, y, prior = make_validation(2)
    y_missing = y.copy()
    y_missing[::3, 0] = -1
    sel = select_alpha(lp, y_missing, prior, alphas=[0.0, 1.0])
    keep = y_missing[:, 0] >= 0
    acc1 = (gmtl_decode(lp, prior, alpha=1.0).labels[keep, 0] == y[keep, 0]).mean()
    assert sel.curve["metric"].iloc[1] == pytest.approx(acc1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alphas=[0.5, 2.0]), r"alphas must lie in \[0, 1\]"),
        (dict(main_task=2), "main_task must be in"),
        (dict(tolerance=-0.1), "tolerance must be"),
        (dict(mode="ratio"), "mode must be"),
    ],
)
def test_bad_input(kwargs, match):
    lp, y, prior = make_validation()
    with pytest.raises(ValueError, match=match):
        select_alpha(lp, y, prior, **kwargs)


def test_wrong_number_of_rows():
    lp, y, prior = make_validation()
    with pytest.raises(ValueError, match="labels has 10 rows"):
        select_alpha(lp, y[:10], prior)
