"""The Table 2 verdict does not call a relative improvement inside the seed noise a win."""

import pytest

from causalmtl.experiments.mtcrl_digits import _noise_band


def test_noise_band_is_one_percent_or_two_standard_errors():
    assert _noise_band(0.0, 1) == 0.01
    assert _noise_band(0.05, 1) == 0.01                      # one seed: no standard error
    assert _noise_band(0.04, 4) == pytest.approx(0.04)       # 2 · 0.04 / √4
    assert _noise_band(0.004, 4) == 0.01
    assert _noise_band(float("nan"), 3) == 0.01
