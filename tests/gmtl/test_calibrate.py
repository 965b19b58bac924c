"""Per-head calibration by NLL with L-BFGS (causalmtl.gmtl.unknown_q.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest

from causalmtl.gmtl.unknown_q.calibrate import (
    CALIBRATORS,
    CrossTaskScaling,
    TemperatureScaling,
    calibration_report,
    expected_calibration_error,
    make_calibrator,
)


def log_softmax(z: np.ndarray) -> np.ndarray:
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def miscalibrated(n: int, seed: int, scale: float = 3.0, bias: float = 0.0):
    """Labels drawn from true logits; the model reports ``scale × logits + bias`` (overconfident)."""
    rng = np.random.default_rng(seed)
    true = [rng.normal(size=(n, 2)) * 1.5, rng.normal(size=(n, 3)) * 1.5]
    labels = np.stack(
        [(rng.random(n)[:, None] > np.cumsum(np.exp(log_softmax(z)), 1)).sum(1) for z in true], 1
    )
    reported = [log_softmax(scale * z + bias * np.arange(z.shape[1])) for z in true]
    return reported, labels


def test_temperature_recovers_the_scale_and_lowers_validation_nll() -> None:
    lp, y = miscalibrated(4000, 0)
    lp_val, y_val = miscalibrated(4000, 1)
    cal = TemperatureScaling().fit(lp, y)
    np.testing.assert_allclose(cal.temperatures, 3.0, rtol=0.1)
    before = calibration_report(lp_val, y_val)
    after = calibration_report(cal.transform(lp_val), y_val)
    assert (after.nll < before.nll - 0.1).all()
    assert (after.ece < before.ece).all()
    assert (cal.report_after_.nll < cal.report_before_.nll).all()


@pytest.mark.parametrize("method", sorted(CALIBRATORS))
def test_every_method_lowers_held_out_nll(method: str) -> None:
    lp, y = miscalibrated(3000, 2, scale=2.5, bias=0.8)
    lp_val, y_val = miscalibrated(3000, 3, scale=2.5, bias=0.8)
    cal = make_calibrator(method).fit(lp, y)
    before = calibration_report(lp_val, y_val).nll
    after = calibration_report(cal.transform(lp_val), y_val).nll
    assert (after < before - 0.05).all(), (method, before, after)
    out = cal.transform(lp_val)
    np.testing.assert_allclose([np.logaddexp.reduce(o, axis=1) for o in out], 0.0, atol=1e-12)


def test_bias_methods_fix_a_bias_temperature_cannot() -> None:
    lp, y = miscalibrated(5000, 4, scale=1.0, bias=1.5)
    nll = {m: calibration_report(make_calibrator(m).fit_transform(lp, y), y).nll.sum() for m in CALIBRATORS}
    assert nll["bcts"] < nll["temperature"] - 0.05
    assert nll["vector"] < nll["temperature"] - 0.05


def test_cross_task_starts_at_identity() -> None:
    lp, y = miscalibrated(300, 5)
    cal = CrossTaskScaling(l2=1e9).fit(lp, y)  # the penalty pins the parameters to their start
    for a, b in zip(cal.transform(lp), lp):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_missing_labels_are_skipped() -> None:
    lp, y = miscalibrated(2000, 6)
    y2 = y.copy()
    y2[:1000, 1] = -1
    a = TemperatureScaling().fit(lp, y2).temperatures
    b0 = TemperatureScaling().fit([lp[0]], y[:, :1]).temperatures
    b1 = TemperatureScaling().fit([lp[1][1000:]], y[1000:, 1:]).temperatures
    np.testing.assert_allclose(a, [b0[0], b1[0]], rtol=1e-5)


def test_ece_brute_force() -> None:
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1])
    # bins of width 0.5 (n_bins=2): (0.5, 1] holds all four: conf mean .7375, acc .75
    assert np.isclose(expected_calibration_error(np.log(p), y, n_bins=2), abs(0.75 - 0.7375))
    # n_bins=10: bins 0.9 -> {0.9}, 0.8 -> {0.8}, 0.7 -> {0.7}, 0.6 -> {0.55}
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.55)) / 4
    assert np.isclose(expected_calibration_error(np.log(p), y, n_bins=10), want)


def test_bad_input() -> None:
    lp, y = miscalibrated(200, 7)
    cal = TemperatureScaling()
    with pytest.raises(ValueError, match="not fitted"):
        cal.transform(lp)
    with pytest.raises(ValueError, match="labels has 3 task columns"):
        cal.fit(lp, np.zeros((200, 3), int))
    with pytest.raises(ValueError, match="labels has 100 rows"):
        cal.fit(lp, y[:100])
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = 5"):
        bad = y.copy()
        bad[0, 1] = 5
        cal.fit(lp, bad)
    cal.fit(lp, y)
    with pytest.raises(ValueError, match=r"fitted for n_classes=\(2, 3\)"):
        cal.transform([lp[0]])
    with pytest.raises(ValueError, match=r"fitted for n_classes=\(2, 3\)"):
        cal.transform([lp[0], lp[0]])
    with pytest.raises(ValueError, match="method must be one of"):
        make_calibrator("platt")
    with pytest.raises(ValueError, match="non-finite"):
        cal.transform([lp[0], np.full((200, 3), np.nan)])
    with pytest.raises(ValueError, match="no observed label"):
        TemperatureScaling().fit(lp, np.stack([y[:, 0], -np.ones(200, int)], 1))
