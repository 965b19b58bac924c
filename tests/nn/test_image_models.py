"""Image encoders (ResNet, SegNet, the factory), dense heads and every architecture on maps."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from _torchvision_resnet_keys import RESNET18_KEYS, RESNET50_KEYS
from torch import nn

from causalmtl.data.base import Task
from causalmtl.methods.mtcrl.regularizers import decorrelation_penalty, module_correlation
from causalmtl.nn import (
    STL,
    CNNEncoder,
    CrossStitchNetwork,
    MLPEncoder,
    MMoE,
    MTCRLNet,
    ResNet,
    SegNet,
    SharedTrunk,
    TaskonomyDecoder,
    build_image_encoder,
    is_map_encoder,
    resnet18,
    resnet50,
    seeded,
)
from causalmtl.nn.dense import ConvHead, PooledHead
from causalmtl.nn.segnet import SEGNET_WIDTHS


def _task(name: str, kind: str, n_classes: int = 0, channels: int = 1) -> Task:
    """A Task of the image contract (``segmentation`` / ``dense`` with ``channels``)."""
    return Task(name, kind, n_classes=n_classes, channels=channels)  # type: ignore[arg-type]


CLS = _task("scene", "classification", n_classes=3)
SEG = _task("seg", "segmentation", n_classes=4)
DEPTH = _task("normals", "dense", channels=2)
REG = _task("age", "regression")
TASKS = (CLS, SEG, DEPTH, REG)
H = W = 32


def _data(b: int = 4, seed: int = 0):
    """Images and targets that are functions of the image (so that a few steps can fit them),
    with ignored segmentation pixels (-1) and invalid dense pixels (NaN)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, H, W, generator=g)
    y_cls = torch.arange(b) % 3
    x[:, 0] += y_cls[:, None, None].float()  # the class shifts channel 0
    seg = (x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()  # 4 classes from the pixel's signs
    seg[:, :4] = -1  # ignored pixels
    dense = torch.stack([x[:, 1], x[:, 2] - x[:, 1]], dim=1).clone()
    dense[:, :, -3:] = float("nan")  # invalid pixels
    y_reg = x[:, 0].mean(dim=(1, 2))
    return x, (y_cls, seg, dense, y_reg)


def _local_loss(outs, ys) -> torch.Tensor:
    """Masked losses per the contract, computed here (the trainer's dense losses live elsewhere)."""
    cls, seg, dense, reg = outs
    y_cls, y_seg, y_dense, y_reg = ys
    l_cls = -cls.gather(1, y_cls[:, None]).mean()
    valid = y_seg >= 0
    picked = seg.gather(1, y_seg.clamp(min=0)[:, None])[:, 0]
    l_seg = -(picked * valid).sum() / valid.sum()
    ok = ~torch.isnan(y_dense)
    l_dense = ((dense - torch.nan_to_num(y_dense)) ** 2 * ok).sum() / ok.sum()
    l_reg = ((reg - y_reg) ** 2).mean()
    return l_cls + l_seg + l_dense + l_reg


class _ConvModule(nn.Sequential):
    """A small map encoder: two 3×3 convs at input resolution, ``out_channels`` maps."""

    def __init__(self, c: int) -> None:
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, c, 3, padding=1), nn.ReLU())
        self.out_channels = c


def _tiny_resnet() -> ResNet:
    return resnet18(as_encoder="map", base_width=4)


def _stitched():
    cols = [_tiny_resnet() for _ in TASKS]
    return CrossStitchNetwork(cols, TASKS, stitch_after=[4, 5, 6, 7])  # after layer1..layer4


ARCHS = {
    "shared-segnet": lambda: SharedTrunk(SegNet(width="tiny"), TASKS),
    "shared-resnet": lambda: SharedTrunk(_tiny_resnet(), TASKS),
    "stl": lambda: STL(lambda: SegNet(width="tiny"), TASKS),
    "mmoe": lambda: MMoE(lambda: SegNet(width="tiny"), TASKS, n_experts=2, gate_in_dim=3 * H * W),
    "cross-stitch": _stitched,
    "mtcrl": lambda: MTCRLNet(_ConvModule, TASKS, n_modules=4, width=16),
    "mtcrl-sum": lambda: MTCRLNet(_ConvModule, TASKS, n_modules=4, width=16, routing="sum"),
    "mtcrl-groups": lambda: MTCRLNet(SegNet(width="tiny"), TASKS, n_modules=4, width=8),
}


# --- ResNet: torchvision's state-dict layout ----------------------------------------------------
@pytest.mark.parametrize(("build", "expected"), [(resnet18, RESNET18_KEYS), (resnet50, RESNET50_KEYS)])
def test_resnet_state_dict_equals_torchvision(build, expected):
    got = [(k, tuple(v.shape)) for k, v in build().state_dict().items()]
    assert got == [(k, tuple(s)) for k, s in expected]


def _torchvision_like_checkpoint(path, keys, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in keys:
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g)
    torch.save(state, path)
    return state


def test_resnet_loads_a_torchvision_checkpoint_strictly_in_every_mode(tmp_path):
    path = tmp_path / "resnet18-imagenet.pth"
    state = _torchvision_like_checkpoint(path, RESNET18_KEYS)
    full = resnet18(weights=path)
    assert torch.equal(full.fc.weight, state["fc.weight"])
    for mode in ("pooled", "dilated"):
        enc = resnet18(weights=path, as_encoder=mode)
        assert torch.equal(enc.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
        assert torch.equal(enc.bn1.running_var, state["bn1.running_var"])
        assert "fc.weight" not in enc.state_dict()


def test_resnet_reads_wrapped_checkpoints(tmp_path):
    small = resnet18(base_width=4).state_dict()
    # a training checkpoint holding the state dict, with DDP's "module." prefix
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in small.items()}}, tmp_path / "ddp.pth")
    enc = resnet18(weights=tmp_path / "ddp.pth", as_encoder="map", base_width=4)
    assert torch.equal(enc.layer2[0].downsample[0].weight, small["layer2.0.downsample.0.weight"])
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth.*expected a state dict"):
        resnet18(weights=tmp_path / "list.pth")


def test_resnet_weights_errors_name_the_file_and_keys(tmp_path):
    keys = [k for k, _ in RESNET18_KEYS]  # key checks come before shape checks: scalars suffice
    short = tmp_path / "missing.pth"
    torch.save({k: torch.zeros(()) for k in keys if k != "layer3.0.bn2.running_mean"}, short)
    with pytest.raises(ValueError, match=r"missing\.pth.*layer3\.0\.bn2\.running_mean"):
        resnet18(weights=short)
    extra = tmp_path / "extra.pth"
    torch.save({**{k: torch.zeros(()) for k in keys}, "head.weight": torch.zeros(2)}, extra)
    with pytest.raises(ValueError, match=r"extra\.pth.*unexpected.*head\.weight"):
        resnet18(weights=extra)
    with pytest.raises(ValueError, match=r"extra\.pth.*missing key"):
        resnet50(weights=extra)  # another architecture: bottleneck keys are missing
    with pytest.raises(ValueError, match="no such checkpoint"):
        resnet18(weights=tmp_path / "nope.pth")
    good = tmp_path / "good.pth"
    torch.save(resnet18(base_width=4).state_dict(), good)
    with pytest.raises(ValueError, match=r"good\.pth.*'conv1\.weight' is \(4, 3, 7, 7\).*\(4, 1, 7, 7\)"):
        resnet18(weights=good, in_channels=1, base_width=4)


def test_resnet_from_scratch_is_logged(caplog):
    with caplog.at_level("INFO", logger="causalmtl.nn.resnet"):
        resnet18(as_encoder="pooled", base_width=4)
    assert "from scratch" in caplog.text


def test_resnet_strides_and_widths():
    x = torch.zeros(2, 3, 64, 64)
    assert tuple(resnet50(as_encoder="map", base_width=4)(x).shape) == (2, 128, 2, 2)  # 8·4·expansion 4
    dil = resnet50(as_encoder="dilated", base_width=4)
    assert (dil.out_channels, dil.stride) == (128, 8) and tuple(dil(x).shape) == (2, 128, 8, 8)
    pooled = resnet18(as_encoder="pooled", base_width=4)
    assert pooled.out_dim == 32 and tuple(pooled(x).shape) == (2, 32)
    assert is_map_encoder(dil) and not is_map_encoder(pooled) and not is_map_encoder(CNNEncoder())


def test_resnet_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        ResNet("resnet19")
    with pytest.raises(ValueError, match="as_encoder"):
        resnet18(as_encoder="vector")
    with pytest.raises(ValueError, match="dilated"):
        ResNet("resnet18", output="pooled", dilated=True)


# --- SegNet and the decoder ------------------------------------------------------------------------
def test_segnet_map_at_input_resolution_and_reference_layout():
    net = SegNet(width="tiny")
    assert tuple(net(torch.randn(2, 3, 37, 45)).shape) == (2, 8, 37, 45)  # not a multiple of 32
    # the standard configuration is VGG-16's 13 convs (64, 64 | 128, 128 | 256 ×3 | 512 ×3 | 512 ×3)
    assert SEGNET_WIDTHS["standard"] == ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3))
    std = SegNet(width=(2, 3, 4, 5, 6))  # standard depths, small widths: mirrored decoder
    convs = [m for m in std.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 26 and std.out_channels == 2
    assert [c.out_channels for c in convs[:13]] == [2] * 2 + [3] * 2 + [4] * 3 + [5] * 3 + [6] * 3
    assert [c.out_channels for c in convs[13:]] == [2] * 2 + [2] * 2 + [3] * 3 + [4] * 3 + [5] * 3
    with pytest.raises(ValueError, match="H, W >= 32"):
        net(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="width"):
        SegNet(width="huge")


def test_taskonomy_decoder_is_15_layers_upsampling_32x():
    dec = TaskonomyDecoder(16, 5, widths=(8, 8, 4, 4, 4))
    n_conv = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in dec.modules())
    assert n_conv == dec.n_layers == 15
    assert tuple(dec(torch.randn(2, 16, 2, 3)).shape) == (2, 5, 64, 96)
    model = SharedTrunk(_tiny_resnet(), TASKS, decoder="taskonomy", dense_hidden=(8, 8, 4, 4, 4))
    outs = model(torch.randn(2, 3, 40, 40))  # 40 is no multiple of 32: resized to the input
    assert tuple(outs[1].shape) == (2, 4, 40, 40) and tuple(outs[2].shape) == (2, 2, 40, 40)


# --- the factory ------------------------------------------------------------------------------------
def test_build_image_encoder_builtins():
    x = torch.zeros(2, 3, 32, 32)
    assert build_image_encoder("resnet18", width=4).out_dim == 32
    assert tuple(build_image_encoder("resnet50", output="dilated", width=4)(torch.zeros(1, 3, 64, 64)).shape) == (1, 128, 8, 8)
    seg = build_image_encoder("segnet", output="pooled", width="tiny")
    assert seg.out_dim == 8 and tuple(seg(x).shape) == (2, 8)
    with pytest.raises(ValueError, match="unknown encoder 'vgg'.*resnet50.*segnet"):
        build_image_encoder("vgg")
    with pytest.raises(ValueError, match="output"):
        build_image_encoder("segnet", output="dense")


@pytest.mark.parametrize("name", ["torchvision:resnet50", "timm:resnet50"])
def test_build_image_encoder_optional_packages_missing(name, monkeypatch):
    pkg = name.split(":")[0]
    monkeypatch.setitem(sys.modules, pkg, None)  # importing it raises ImportError
    with pytest.raises(ValueError, match=rf"needs the package '{pkg}'.*resnet50.*segnet"):
        build_image_encoder(name)


def test_build_image_encoder_timm_plumbing(monkeypatch):
    calls = []

    class _Feats(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, stride=4, padding=1)
            self.feature_info = types.SimpleNamespace(channels=lambda: [6])

        def forward(self, x):
            return [self.conv(x)]

    def create_model(name, **kw):
        calls.append((name, kw))
        if kw.get("features_only"):
            return _Feats()
        m = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        m.num_features = 5
        return m

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    pooled = build_image_encoder("timm:fake", output="pooled")
    assert pooled.out_dim == 5 and tuple(pooled(torch.zeros(2, 3, 16, 16)).shape) == (2, 5)
    fmap = build_image_encoder("timm:fake", output="map", weights="w.pth")
    assert fmap.out_channels == 6 and tuple(fmap(torch.zeros(2, 3, 16, 16)).shape) == (2, 6, 4, 4)
    assert calls[0][1]["num_classes"] == 0
    assert calls[1][1]["pretrained_cfg_overlay"] == {"file": "w.pth"} and calls[1][1]["features_only"]


# --- every architecture on maps ---------------------------------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHS))
def test_architectures_outputs_follow_the_contract(arch):
    with seeded(0):
        model = ARCHS[arch]()
    x, _ = _data()
    out = model.forward_full(x)
    cls, seg, dense, reg = out.outputs
    assert tuple(cls.shape) == (4, 3) and torch.allclose(cls.exp().sum(1), torch.ones(4), atol=1e-5)
    assert tuple(seg.shape) == (4, 4, H, W)
    assert torch.allclose(seg.exp().sum(1), torch.ones(4, H, W), atol=1e-5)
    assert tuple(dense.shape) == (4, 2, H, W) and tuple(reg.shape) == (4,)
    assert out.features is not None and tuple(out.features.shape) == (4, model.feature_dim)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_architectures_train_on_dense_tasks(arch):
    with seeded(1):
        model = ARCHS[arch]()
    x, ys = _data(seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = _local_loss(model(x), ys)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0], losses  # measured 0.48-0.82 over the archs (seed 1)


@pytest.mark.parametrize("arch", ["shared-segnet", "stl", "mmoe", "cross-stitch", "mtcrl"])
def test_parameter_partition_with_dense_heads(arch):
    with seeded(0):
        model = ARCHS[arch]()
    x, ys = _data()
    shared = {id(p) for p in model.shared_parameters()}
    for t in range(len(TASKS)):
        own = model.task_parameters(t)
        assert own and not {id(p) for p in own} & shared
        # a task's own parameters get gradient from that task only
        model.zero_grad()
        outs = model(x)
        other = (t + 1) % len(TASKS)
        single = [o.sum() * 0 for o in outs]
        single[other] = outs[other].float().nan_to_num().mean()
        sum(single).backward()
        assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in own)
    if arch != "stl":
        assert shared  # the encoder(s) / experts / columns


def test_mtcrl_graph_gets_gradients_on_feature_maps():
    with seeded(0):
        model = ARCHS["mtcrl"]()
    x, ys = _data()
    out = model.forward_full(x)
    assert tuple(out.extra["z"].shape) == (4, 4, 4, H, W)
    assert tuple(out.extra["mixed"].shape) == (4, len(TASKS), 16, H, W)
    loss = _local_loss(out.outputs, ys) + 1e-2 * decorrelation_penalty(out.extra["z"])
    loss.backward()
    for t in range(len(TASKS)):
        assert float(model.theta_rows[t].grad.abs().min()) > 0
    assert all(float(p.grad.abs().sum()) > 0 for p in model.encoders.parameters() if p.dim() > 1)
    # G-IRM's environment-specific graphs (B, T, K) route maps the same as the shared graph
    g = model.graph.detach()
    assert torch.allclose(model.mix(out.extra["z"], g.expand(4, -1, -1)), model.mix(out.extra["z"], g))


def test_mtcrl_map_routing_equals_weighted_channel_groups():
    with seeded(0):
        model = ARCHS["mtcrl"]()
    z = torch.randn(2, 4, 4, 5, 6)
    g = torch.rand(len(TASKS), 4)
    mixed = model.mix(z, g)
    for t in range(len(TASKS)):
        want = torch.cat([g[t, k] * z[:, k] for k in range(4)], dim=1)
        assert torch.allclose(mixed[:, t], want)
    model.routing = "sum"
    summed = model.mix(z, g)
    assert torch.allclose(summed[:, 1], sum(g[1, k] * z[:, k] for k in range(4)), atol=1e-6)


def test_dense_tasks_need_a_map_encoder():
    with pytest.raises(ValueError, match=r"\['seg', 'normals'\].*feature maps"):
        SharedTrunk(MLPEncoder(5, (8,)), TASKS)
    with pytest.raises(ValueError, match="feature maps"):
        MTCRLNet(lambda d: nn.Linear(5, d), TASKS, n_modules=2, width=8)


def test_vector_models_unchanged_by_map_support():
    """A vector encoder's model builds the same heads and outputs as before (no pooled heads)."""
    tasks = (CLS, REG)
    with seeded(0):
        model = SharedTrunk(MLPEncoder(5, (8,)), tasks)
    assert not model.feature_maps and not any(isinstance(h, (PooledHead, ConvHead)) for h in model.heads)
    x = torch.randn(3, 5)
    z = model.encoder(x)
    assert torch.equal(model(x)[0], model.heads[0](z)) and torch.equal(model.forward_full(x).features, z)


# --- MT-CRL decorrelation on feature maps (Eq. 1–2) -------------------------------------------------
def _pearson_penalty(rows: np.ndarray, k: int, m: int) -> float:
    rho = np.corrcoef(rows, rowvar=False)
    ids = np.repeat(np.arange(k), m)
    return 0.5 * float((rho ** 2 * (ids[:, None] != ids[None, :])).sum())


def test_decorrelation_on_maps_pixels_and_pooled_match_brute_force():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 2, 2, 4, 5, generator=g, dtype=torch.float64)
    z[:, 1, 0] += 0.7 * z[:, 0, 1]  # correlate module 1 with module 0
    b, k, m, h, w = z.shape
    # pixels: one sample per (example, y, x), the K·m channels as variables
    rows = np.array([[float(z[i, kk, mm, yy, xx]) for kk in range(k) for mm in range(m)]
                     for i in range(b) for yy in range(h) for xx in range(w)])
    assert float(decorrelation_penalty(z, eps=0.0)) == pytest.approx(_pearson_penalty(rows, k, m), rel=1e-10)
    pooled = z.mean(dim=(-2, -1)).reshape(b, k * m).numpy()
    assert float(decorrelation_penalty(z, eps=0.0, spatial="pooled")) == pytest.approx(
        _pearson_penalty(pooled, k, m), rel=1e-10)
    assert tuple(module_correlation(z).shape) == (4, 4)
    with pytest.raises(ValueError, match="spatial"):
        decorrelation_penalty(z, spatial="mean")


def test_task_module_gradients_on_map_models():
    """MT-CRL's Figure-4 diagnostics run on feature-map MMoE / MTCRLNet (scalar tasks: the dense
    per-row losses belong to the trainer's loss module); the MMoE value equals a direct
    computation of ∂R_t/∂s_{t,k} through the mixed maps."""
    from causalmtl.methods.batch import Batch
    from causalmtl.methods.mtcrl.diagnostics import task_module_gradients

    tasks = (CLS, REG)
    x, (y_cls, _, _, y_reg) = _data()
    y = torch.stack([y_cls.float(), y_reg], dim=1)
    batch = Batch(x, y, torch.zeros(4, dtype=torch.long))
    with seeded(0):
        mmoe = MMoE(lambda: _ConvModule(4), tasks, n_experts=3, gate_in_dim=3 * H * W)
        net = MTCRLNet(_ConvModule, tasks, n_modules=2, width=8)
    got = task_module_gradients(mmoe, batch)
    mmoe.eval()
    scale = torch.ones(2, 3, requires_grad=True)
    experts = torch.stack([e(x) for e in mmoe.experts], dim=1)
    gates = mmoe.gate_weights(x) * scale
    cls = torch.log_softmax(mmoe.heads[0](torch.einsum("bk,bkchw->bchw", gates[:, 0], experts)), -1)
    reg = mmoe.heads[1](torch.einsum("bk,bkchw->bchw", gates[:, 1], experts)).reshape(-1)
    risk = -cls.gather(1, y_cls[:, None]).mean() + ((reg - y_reg) ** 2).mean()
    (want,) = torch.autograd.grad(risk, scale)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-7)
    assert task_module_gradients(net, batch, wrt="graph").shape == (2, 2)


def test_cross_stitch_from_map_stl_reproduces_it_with_identity_stitches():
    with seeded(0):
        stl = STL(_tiny_resnet, TASKS)
    stl.eval()
    net = CrossStitchNetwork.from_stl(stl, stitch_after=[4, 5, 6, 7], init_self=1.0).eval()
    x, _ = _data()
    for a, b in zip(stl(x), net(x)):
        torch.testing.assert_close(a, b)
    assert net.feature_maps and net.feature_dim == stl.feature_dim == 4 * 32


def test_build_image_encoder_torchvision_plumbing(monkeypatch):
    class _TV(nn.Module):  # the torchvision ResNet interface: children ..., layer4, avgpool, fc
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.layer4 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(6, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.avgpool(self.layer4(self.conv1(x))), 1))

    asked = []

    def get_model(name, weights=None):
        asked.append((name, weights))
        return _TV()

    fake = types.SimpleNamespace(models=types.SimpleNamespace(get_model=get_model))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    pooled = build_image_encoder("torchvision:resnet50")
    assert pooled.out_dim == 6 and tuple(pooled(torch.zeros(2, 3, 16, 16)).shape) == (2, 6)
    fmap = build_image_encoder("torchvision:resnet50", output="map")
    assert fmap.out_channels == 6 and tuple(fmap(torch.zeros(2, 3, 16, 16)).shape) == (2, 6, 4, 4)
    assert asked == [("resnet50", None)] * 2


@pytest.mark.parametrize("girm", ["var", "norm"])
def test_mtcrl_method_steps_on_feature_map_modules(girm):
    """MT-CRL's full objective (decorrelation over batch × pixels, graph terms, G-IRM over two
    environments) on a feature-map MTCRLNet; scalar tasks, since the dense per-row losses are
    the trainer's (nn.base.row_losses) part. One update changes θ and the modules."""
    from causalmtl.methods.batch import Batch
    from causalmtl.methods.mtcrl import MTCRL

    tasks = (CLS, REG)
    with seeded(0):
        net = MTCRLNet(_ConvModule, tasks, n_modules=2, width=8)
    batches = []
    for e in range(2):
        x, (y_cls, _, _, y_reg) = _data(seed=10 + e)
        batches.append(Batch(x, torch.stack([y_cls.float(), y_reg], dim=1), torch.full((4,), e)))
    method = MTCRL(net, girm=girm, lambda_decor=1e-2)
    method.configure_optimizer(torch.optim.Adam(method.parameters(), lr=1e-2))
    theta0 = net.theta.detach().clone()
    conv0 = net.encoders[0][0].weight.detach().clone()
    logs = method.update(batches)
    assert float(logs["decor"]) > 0 and float(logs["girm"]) >= 0 and torch.isfinite(logs["loss"])
    assert not torch.equal(net.theta.detach(), theta0) and not torch.equal(net.encoders[0][0].weight, conv0)
