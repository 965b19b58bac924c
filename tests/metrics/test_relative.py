import numpy as np
import pandas as pd
import pytest

from causalmtl.metrics.relative import (
    per_task_relative_improvement,
    relative_improvement,
    relative_improvement_table,
)


def test_mixed_directions_match_hand_computation():
    # task 0: accuracy 0.80 -> 0.88 (higher better): +10 %
    # task 1: MSE 2.0 -> 1.5 (lower better): +25 %
    # task 2: error 0.10 -> 0.12 (lower better): -20 %
    ours, base = [0.88, 1.5, 0.12], [0.80, 2.0, 0.10]
    hib = [True, False, False]
    np.testing.assert_allclose(per_task_relative_improvement(ours, base, hib), [0.10, 0.25, -0.20])
    assert relative_improvement(ours, base, hib) == pytest.approx((0.10 + 0.25 - 0.20) / 3)


def test_paper_table9_example():
    # MT-CRL Table 9 (NYUv2), MT-CRL vs MTL: mIoU 19.81 vs 17.64 (higher), Rel Err 0.585 vs 0.651,
    # angle 30.85 vs 31.52 (lower); per-task by hand, then averaged.
    hand = ((19.81 - 17.64) / 17.64 + (0.651 - 0.585) / 0.651 + (31.52 - 30.85) / 31.52) / 3
    got = relative_improvement([19.81, 0.585, 30.85], [17.64, 0.651, 31.52], [True, False, False])
    assert got == pytest.approx(hand, rel=1e-12)
    assert got == pytest.approx(0.082, abs=0.002)  # the paper's Table 2 entry: +8.2 %


def test_bad_input():
    with pytest.raises(ValueError, match="non-zero baseline"):
        relative_improvement([1.0], [0.0], [True])
    with pytest.raises(ValueError, match="one entry per task"):
        relative_improvement([1.0, 2.0], [1.0, 2.0], [True, False, True])


def _long(method, seed_values, hib):
    rows = []
    for seed, vals in seed_values.items():
        for t, v in enumerate(vals):
            rows.append({"method": method, "seed": seed, "task": f"t{t}", "value": v, "higher_is_better": hib[t]})
    return rows


def test_table_mean_std_over_seeds_paired_by_seed():
    hib = [True, False]
    base = {0: [0.8, 2.0], 1: [0.5, 1.0]}
    ours = {0: [0.88, 1.5], 1: [0.55, 1.1]}
    frame = pd.DataFrame(_long("mtl", base, hib) + _long("ours", ours, hib))
    table = relative_improvement_table(frame, "mtl").set_index("method")
    seed0 = (0.1 + 0.25) / 2
    seed1 = (0.1 - 0.1) / 2
    assert table.loc["ours", "mean"] == pytest.approx((seed0 + seed1) / 2)
    assert table.loc["ours", "std"] == pytest.approx(np.std([seed0, seed1], ddof=1))
    assert table.loc["ours", "n_seeds"] == 2
    assert table.loc["mtl", "mean"] == 0.0
    unpaired = relative_improvement_table(frame, "mtl", pair_seeds=False).set_index("method")
    bmean = np.array([0.65, 1.5])
    expect = np.mean([relative_improvement(ours[s], bmean, hib) for s in (0, 1)])
    assert unpaired.loc["ours", "mean"] == pytest.approx(expect)


def test_table_rejects_duplicates_and_missing_base():
    frame = pd.DataFrame(_long("mtl", {0: [1.0]}, [True]) * 2)
    with pytest.raises(ValueError, match="several rows"):
        relative_improvement_table(frame, "mtl")
    with pytest.raises(ValueError, match="no rows"):
        relative_improvement_table(frame.iloc[:1], "stl")


# --- metric dicts with directions from the names (dense tasks) ------------------------------------
from causalmtl.metrics.direction import metric_direction  # noqa: E402
from causalmtl.metrics.relative import (  # noqa: E402
    per_metric_relative_improvement,
    relative_improvement_from_metrics,
)


def test_metric_dict_paper_table9_mixed_directions():
    # MT-CRL Table 9 (NYUv2), MT-CRL vs MTL: mIoU up, Rel Err down, angle down
    ours = {"seg/miou": 19.81, "depth/rel_err": 0.585, "normal/mean_angle": 30.85}
    base = {"seg/miou": 17.64, "depth/rel_err": 0.651, "normal/mean_angle": 31.52}
    per = per_metric_relative_improvement(ours, base)
    assert per == pytest.approx({
        "seg/miou": (19.81 - 17.64) / 17.64,
        "depth/rel_err": (0.651 - 0.585) / 0.651,
        "normal/mean_angle": (31.52 - 30.85) / 31.52,
    }, rel=1e-12)  # fmt: skip
    got = relative_improvement_from_metrics(ours, base)
    assert got == pytest.approx(relative_improvement([19.81, 0.585, 30.85], [17.64, 0.651, 31.52], [True, False, False]))
    assert got == pytest.approx(0.082, abs=0.002)  # Table 2: +8.2 %


def test_metric_dict_explicit_directions_and_errors():
    ours, base = {"acc/a": 0.9, "score": 2.0}, {"acc/a": 0.8, "score": 4.0}
    # "score" has no known direction: given explicitly, as -1 or False
    for d in (-1, False):
        assert per_metric_relative_improvement(ours, base, {"score": d})["score"] == pytest.approx(0.5)
    assert per_metric_relative_improvement(ours, base, {"score": True})["score"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="'score' has no known direction"):
        relative_improvement_from_metrics(ours, base)
    with pytest.raises(ValueError, match=r"only in ours: \['score'\]"):
        relative_improvement_from_metrics(ours, {"acc/a": 0.8})
    with pytest.raises(ValueError, match="must be"):
        relative_improvement_from_metrics(ours, base, {"score": "down"})
    with pytest.raises(ValueError, match="non-zero baseline"):
        relative_improvement_from_metrics({"mse": 1.0}, {"mse": 0.0})


def test_metric_direction_names():
    for name in ("miou", "pix_acc", "within_11.25", "within_30", "acc/digit", "seg/miou", "accuracy"):
        assert metric_direction(name) == 1, name
    for name in ("abs_err", "rel_err", "mean_angle", "median_angle", "mse/rating", "loss", "ce", "nll"):
        assert metric_direction(name) == -1, name
    with pytest.raises(ValueError, match="no known direction"):
        metric_direction("foo")
    with pytest.raises(ValueError, match="opposite directions"):
        metric_direction("acc/loss")
