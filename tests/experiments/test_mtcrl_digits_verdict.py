"""The Table 2 verdict does not call a relative improvement inside the seed noise a win."""

import pytest

from causalmtl.experiments.builtin.mtcrl_digits import _noise_band


def test_noise_band_is_one_percent_or_two_standard_errors():
    assert _noise_band(0.0, 1) == 0.01
    assert _noise_band(0.05, 1) == 0.01                      # one seed: no standard error
    assert _noise_band(0.04, 4) == pytest.approx(0.04)       # 2 · 0.04 / √4
    assert _noise_band(0.004, 4) == 0.01
    assert _noise_band(float("nan"), 3) == 0.01


# --- the fair baselines and the Multi-MNIST encoder (issue 18) -------------------------------
def _image_splits(h: int, w: int):
    import numpy as np

    from causalmtl.data.base import DatasetSplits, MultiTaskDataset, Task

    rng = np.random.default_rng(0)
    tasks = (Task("left", n_classes=10), Task("right", n_classes=10))
    part = MultiTaskDataset(rng.random((6, 1, h, w), dtype=np.float32), rng.integers(0, 10, (6, 2)), tasks)
    return DatasetSplits(part, part, part, name="img")


def test_auto_encoder_is_lenet_on_multi_mnist_images_and_mlp_on_small_ones():
    import pytest

    from causalmtl.experiments.common import ModelConfig, build_model, resolve_encoder
    from causalmtl.nn.encoders import LeNetEncoder, MLPEncoder

    assert resolve_encoder("auto", (28, 56)) == "lenet"
    assert resolve_encoder("auto", (8, 16)) == "mlp"
    assert resolve_encoder("auto", None) == "mlp"
    with pytest.raises(ValueError, match="model.encoder must be one of"):
        resolve_encoder("resnet", (28, 56))
    cfg = ModelConfig(encoder="auto", hidden=[32, 16], width=32, n_modules=4)
    big = build_model("mtcrl", _image_splits(28, 56).train, cfg, seed=0)
    assert all(isinstance(m, LeNetEncoder) and m.out_dim == 8 for m in big.encoders)
    small = build_model("mmoe-k", _image_splits(8, 16).train, cfg, seed=0)
    assert len(small.experts) == 4 and all(isinstance(e, MLPEncoder) and e.out_dim == 8 for e in small.experts)
    with pytest.raises(ValueError, match=r"at least 16×16"):
        build_model("stl", _image_splits(8, 16).train, ModelConfig(encoder="lenet"), seed=0)


def test_mmoe_k_has_mtcrl_capacity_and_refuses_k_not_dividing_the_width():
    import pytest

    from causalmtl.experiments.common import ModelConfig, build_model

    data = _image_splits(8, 16).train
    cfg = ModelConfig(hidden=[32, 16], width=64, n_modules=8)
    mmoe = build_model("mmoe-k", data, cfg, seed=0)
    mtcrl = build_model("mtcrl", data, cfg, seed=0)
    size = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    assert size(mmoe.experts) == size(mtcrl.encoders)  # the same K modules of width d/K
    with pytest.raises(ValueError, match=r"n_modules=3 does not divide width=64"):
        build_model("mmoe-k", data, ModelConfig(width=64, n_modules=3), seed=0)
