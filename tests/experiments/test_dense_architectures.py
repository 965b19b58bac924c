"""Every architecture that takes feature maps trains through the real Trainer on a tiny NYUv2 copy
written in the real layout (segmentation, depth and normals), with a per-environment method too."""

from __future__ import annotations

import numpy as np
import pytest

from causalmtl.data import load_nyuv2, write_synthetic_nyuv2
from causalmtl.methods import ERM, IRM
from causalmtl.nn import (
    STL,
    CrossStitchNetwork,
    MMoE,
    SegNet,
    SharedTrunk,
    build_image_encoder,
    seeded,
)
from causalmtl.nn.mtcrl import MTCRLNet
from causalmtl.train import Trainer, evaluate


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyuv2")
    write_synthetic_nyuv2(root, n=24, size=(32, 32), seed=0)
    return load_nyuv2(root, seed=0)


def _resnet():
    return build_image_encoder("resnet18", output="map", width=4)


BUILDERS = {
    "stl": lambda tasks: STL(lambda: SegNet(width="tiny"), tasks),
    "shared": lambda tasks: SharedTrunk(SegNet(width="tiny"), tasks),
    "mmoe": lambda tasks: MMoE(lambda: SegNet(width="tiny"), tasks, n_experts=2, gate_in_dim=3 * 32 * 32),
    "cross_stitch": lambda tasks: CrossStitchNetwork.from_stl(STL(_resnet, tasks)),
    "mtcrl": lambda tasks: MTCRLNet(SegNet(width="tiny"), tasks, n_modules=4,
                                    width=SegNet(width="tiny").out_channels),
}


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_every_map_architecture_trains_on_nyuv2_layout(splits, arch):
    with seeded(0):
        model = BUILDERS[arch](splits.tasks)
    method = IRM(model) if arch == "shared" else ERM(model)
    proto = "mtcrl" if arch == "shared" else "split"
    res = Trainer(method, epochs=2, batch_size=4, lr=3e-3, seed=0, protocol=proto).fit(splits)
    assert np.isfinite(res.history["train/loss"]).all()
    m = evaluate(model, splits.test)
    for key in ("miou/segmentation", "rel_err/depth", "mean_angle/normal"):
        assert np.isfinite(m[key]), (arch, key)
