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
