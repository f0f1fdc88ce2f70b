import copy
import math

import pytest
import torch

from medlens.segmentation import NetworkConfig
from medlens.segmentation._loss import (
    DeepSupervisionLoss,
    DiceCELoss,
    deep_supervision_weights,
    soft_dice,
)
from medlens.segmentation._networks import build_network, count_parameters


@pytest.mark.parametrize("arch", ["unet", "mednext"])
def test_output_shapes_3d(arch):
    cfg = NetworkConfig(
        3,
        2,
        4,
        features=(4, 8, 16),
        strides=((1, 1, 1), (2, 2, 1), (2, 2, 2)),
        kernel_sizes=((3, 3, 1), (3, 3, 3), (3, 3, 3)),
        architecture=arch,
    )
    net = build_network(cfg)
    x = torch.zeros(2, 2, 16, 16, 8)
    outs = net.train()(x)
    assert [tuple(o.shape) for o in outs] == [(2, 4, 16, 16, 8), (2, 4, 8, 8, 8)]
    assert tuple(net.eval()(x).shape) == (2, 4, 16, 16, 8)
    assert cfg.divisor == (4, 4, 2)
    assert count_parameters(net) > 0


@pytest.mark.parametrize("arch", ["unet", "mednext"])
def test_output_shapes_2d(arch):
    cfg = NetworkConfig(2, 1, 3, features=(4, 8, 16, 16), architecture=arch)
    net = build_network(cfg).train()
    outs = net(torch.zeros(1, 1, 32, 24))
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 24), (16, 12), (8, 6)]


def test_config_roundtrip_and_errors():
    cfg = NetworkConfig(3, 1, 2, features=(4, 8))
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="spatial_dims"):
        NetworkConfig(4, 1, 2)
    with pytest.raises(ValueError, match="one entry per stage"):
        NetworkConfig(3, 1, 2, features=(4, 8), strides=((1, 1, 1),))


def test_soft_dice_hand_case():
    p = torch.tensor([[[0.8, 0.6, 0.0, 0.2]]])
    t = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    # tp = 1.4, fp = 0.2, fn = 0.6 -> 2.8 / (2.8 + 0.8)
    assert float(soft_dice(p, t, smooth=0.0)) == pytest.approx(2.8 / 3.6, rel=1e-6)


def test_dice_ce_hand_case():
    # two voxels, two classes, logits chosen so softmax = (0.5, 0.5) everywhere
    logits = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1, 0]]])
    loss = DiceCELoss(smooth=0.0)(logits, target)
    # CE = ln 2; foreground dice: tp 0.5, fp 0.5, fn 0.5 -> 1/2
    assert float(loss) == pytest.approx(math.log(2) + 0.5, rel=1e-6)


def test_region_loss_hand_case():
    logits = torch.zeros(1, 1, 2)  # sigmoid 0.5
    target = torch.tensor([[[1, 0]]])
    loss = DiceCELoss(region_based=True, smooth=0.0)(logits, target)
    assert float(loss) == pytest.approx(math.log(2) + 0.5, rel=1e-6)


def test_perfect_prediction_loss_near_zero():
    target = torch.tensor([[[[0, 1], [2, 1]]]])
    logits = torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).float() * 50
    assert float(DiceCELoss()(logits, target)) < 1e-6


def test_deep_supervision_weights_and_downsampled_targets():
    w = deep_supervision_weights(3)
    assert w == pytest.approx([2 / 3, 1 / 3, 0.0])
    loss = DeepSupervisionLoss(DiceCELoss())
    target = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    target[..., :4, :] = 1
    outs = [torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    single = DiceCELoss()(outs[0], target)
    # equal-probability logits give the same loss at every scale here
    assert float(loss(outs, target)) == pytest.approx(float(single), rel=1e-6)


@pytest.mark.parametrize(("dims", "batch"), [(2, 1), (2, 3), (3, 1), (3, 3)])
def test_inference_network_equals_the_trained_modules(dims, batch):
    # group norms for instance norms, oneDNN convolutions (batch 1 is where torch
    # would otherwise take its im2col kernel): the same function within float32 rounding
    from medlens.segmentation import inference_network

    torch.manual_seed(0)
    net = build_network(NetworkConfig(dims, 2, 3, features=(4, 8, 16))).eval()
    with torch.no_grad():  # non-trivial affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d | torch.nn.InstanceNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(batch, 2, *([16] * dims))
    with torch.no_grad():
        ref = net(x)
        fast = inference_network(net)
        out = fast(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # falls back to torch's conv
            low = fast(x).float()
    grad_out = fast(x)  # with autograd on: torch's conv, differentiable
    grad_out.sum().backward()
    assert fast.encoder[0][0][0].weight.grad is not None  # (heads of unused depths get none)
    torch.testing.assert_close(low, ref, rtol=0, atol=0.25)
    torch.testing.assert_close(grad_out.detach(), ref, rtol=0, atol=1e-4)
    inorm = torch.nn.InstanceNorm2d | torch.nn.InstanceNorm3d
    assert not any(isinstance(m, inorm) for m in fast.modules())
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in fast.modules()) > 0
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("arch", "batch"), [("unet", 1), ("unet", 3), ("mednext", 1)])
def test_channels_last_inference_network_equals_the_trained_modules(arch, batch):
    # channels-last layout with the two-pass channels-last instance norm: the same
    # function within float32 rounding (torch's own channels-last group norm is off
    # by ~2e-3 here), also through the sliding window, which converts its tiles
    from medlens.segmentation import (
        channels_last_is_faster,
        inference_network,
        is_channels_last,
        sliding_window_inference,
    )

    torch.manual_seed(0)
    cfg = NetworkConfig(3, 2, 3, features=(8, 16, 32), architecture=arch)
    net = build_network(cfg).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm3d | torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(batch, 2, 16, 12, 20) * 3 + 5
    with torch.no_grad():
        ref = net(x)
        cl = inference_network(copy.deepcopy(net), channels_last=True)
        assert is_channels_last(cl) and not is_channels_last(net)
        out = cl(x.contiguous(memory_format=torch.channels_last_3d))
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
        with torch.enable_grad():  # the fused norm's torch fallback, same function
            torch.testing.assert_close(
                cl(x.contiguous(memory_format=torch.channels_last_3d)).detach(),
                ref,
                rtol=0,
                atol=1e-4,
            )
    if arch == "unet":  # numba is installed here: norm + leaky ReLU fused in each block
        from medlens.segmentation._networks import _ChannelsLastNormAct3d

        assert sum(isinstance(m, _ChannelsLastNormAct3d) for m in cl.modules()) == 10
        assert not any(isinstance(m, torch.nn.LeakyReLU) for m in cl.modules())
    with torch.no_grad():
        swa = sliding_window_inference(net, x[0], (8, 8, 8), n_outputs=3, mirror_axes=(0,))
        swb = sliding_window_inference(cl, x[0], (8, 8, 8), n_outputs=3, mirror_axes=(0,))
    torch.testing.assert_close(swb, swa, rtol=0, atol=1e-4)
    assert channels_last_is_faster(net, (8, 8, 8), 2, repeats=1) in (True, False)
    net2d = build_network(NetworkConfig(2, 1, 2, features=(4, 8)))
    assert channels_last_is_faster(net2d, (8, 8), 1) is False
    assert not is_channels_last(inference_network(net2d, channels_last=True))


@pytest.mark.parametrize("mean", [0.0, 4.0, 300.0])
def test_fused_norm_act_matches_float64_instance_norm(mean):
    # the numba kernel against torch's instance norm + leaky ReLU in float64; a mean
    # 300 standard deviations away from 0 is where float32 one-pass statistics
    # (torch's channels-last group / batch norm) lose the variance
    from medlens.segmentation._fused import norm_act_

    torch.manual_seed(1)
    x = torch.randn(2, 8, 6, 5, 7) * 0.5 + mean
    w, b = torch.rand(8) + 0.5, torch.randn(8) * 0.2
    ref = torch.nn.functional.leaky_relu(
        torch.nn.functional.instance_norm(x.double(), weight=w.double(), bias=b.double()),
        0.01,
    )
    xc = x.contiguous(memory_format=torch.channels_last_3d)
    norm_act_(xc.permute(0, 2, 3, 4, 1).reshape(2, -1, 8).numpy(), w.numpy(), b.numpy(), 1e-5, 0.01)
    # float32 output: ~1 ulp of |x - mean| / std scaled by w, times the offset
    atol = 2e-6 * (1 + mean / 0.5)
    torch.testing.assert_close(xc.double(), ref, rtol=0, atol=atol)


@pytest.mark.parametrize("channels_last", [False, True])
def test_onednn_transposed_conv_equals_torch(channels_last):
    # oneDNN's transposed convolution (inference_network) against torch's own kernel,
    # for the U-Net's kernel = stride up-sampling and an overlapping kernel; output
    # padding takes torch's path
    from medlens.segmentation._networks import _OneDNNConvTranspose3d

    torch.manual_seed(2)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    for kw in ({"kernel_size": 2, "stride": 2}, {"kernel_size": 3, "stride": 2, "padding": 1}):
        ct = torch.nn.ConvTranspose3d(6, 4, **kw).eval().to(memory_format=fmt)
        fast = copy.deepcopy(ct)
        fast.__class__ = _OneDNNConvTranspose3d
        x = torch.randn(1, 6, 5, 4, 6).contiguous(memory_format=fmt)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), ct(x), rtol=0, atol=1e-5)
    ct = torch.nn.ConvTranspose3d(6, 4, 3, 2, 1, output_padding=1).eval()
    fast = copy.deepcopy(ct)
    fast.__class__ = _OneDNNConvTranspose3d
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ct(x), rtol=0, atol=0)
