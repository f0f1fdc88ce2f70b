import itertools

import numpy as np
import pytest
import torch

from medlens.segmentation._sliding import (
    gaussian_importance_map,
    sliding_window_inference,
    tile_starts,
)


def test_tile_starts_cover_and_overlap():
    for size, patch in [(100, 32), (33, 32), (300, 96), (10, 16)]:
        st = tile_starts(size, patch, 0.5)
        assert st[0] == 0 and st[-1] == max(0, size - patch)
        assert all(b - a <= patch // 2 for a, b in itertools.pairwise(st))


def test_translation_equivariant_net_equals_full_forward():
    torch.manual_seed(0)
    net = torch.nn.Conv3d(2, 3, 1)  # pointwise: tiling cannot change the result
    x = torch.randn(2, 37, 29, 21)
    full = net(x[None])[0]
    for gaussian in (True, False):
        out = sliding_window_inference(
            net, x, (16, 16, 16), n_outputs=3, step=0.5, batch_size=3, gaussian=gaussian
        )
        torch.testing.assert_close(out, full.detach(), rtol=1e-5, atol=1e-5)


def test_mirroring_of_flip_equivariant_net():
    net = torch.nn.Conv2d(1, 2, 1)
    x = torch.randn(1, 20, 20)
    a = sliding_window_inference(net, x, (16, 16), n_outputs=2, mirror_axes=(0, 1))
    b = sliding_window_inference(net, x, (16, 16), n_outputs=2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_smaller_than_patch_is_padded_and_cropped():
    net = torch.nn.Conv3d(1, 1, 1, bias=False)
    torch.nn.init.ones_(net.weight)
    x = torch.randn(1, 5, 7, 3)
    out = sliding_window_inference(net, x, (8, 8, 8), n_outputs=1)
    torch.testing.assert_close(out, x, rtol=1e-6, atol=1e-6)


def test_matches_monai_sliding_window():
    monai_inf = pytest.importorskip("monai.inferers")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 3, padding=1)
    ).eval()
    # sizes where both place tiles at the same positions (patch + k * step)
    x = torch.randn(1, 64, 36, 24)
    patch = (32, 24, 16)
    g = gaussian_importance_map(patch)
    ours = sliding_window_inference(net, x, patch, n_outputs=2, step=0.5, batch_size=4)
    with torch.no_grad():
        ref = monai_inf.sliding_window_inference(
            x[None], patch, 4, net, overlap=0.5, mode="gaussian", roi_weight_map=g
        )[0]
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        ref_c = monai_inf.sliding_window_inference(
            x[None], patch, 4, net, overlap=0.5, mode="constant"
        )[0]
    ours_c = sliding_window_inference(net, x, patch, n_outputs=2, gaussian=False)
    torch.testing.assert_close(ours_c, ref_c, rtol=1e-4, atol=1e-4)


def test_gaussian_map_properties():
    g = gaussian_importance_map((9, 7, 5))
    assert g.shape == (9, 7, 5) and float(g.max()) == 1.0 and float(g.min()) > 0
    assert float(g[4, 3, 2]) == 1.0
    np.testing.assert_allclose(g.numpy(), g.numpy()[::-1, ::-1, ::-1], rtol=1e-6)


def _reference_tta(net, x, patch, flips, n_out):
    """Per tile: mean of the flipped-back predictions of every flip, Gaussian-weighted sum."""
    starts = [tile_starts(s, p, 0.5) for s, p in zip(x.shape[1:], patch, strict=True)]
    g = gaussian_importance_map(patch)
    acc = torch.zeros((n_out, *x.shape[1:]))
    wsum = torch.zeros(x.shape[1:])
    with torch.no_grad():
        for t in itertools.product(*starts):
            sl = tuple(slice(s, s + p) for s, p in zip(t, patch, strict=True))
            tile = x[(slice(None), *sl)][None]
            dims = [[a + 2 for a in f] for f in flips]
            ys = [torch.flip(net(torch.flip(tile, d)), d) for d in dims]
            acc[(slice(None), *sl)] += torch.stack(ys).mean(0)[0] * g
            wsum[sl] += g
    return acc / wsum


@pytest.mark.parametrize("batch_size", [1, 3, 8, 20])
def test_tile_mirror_pairs_in_one_batch_equal_per_tile_tta(batch_size):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1),
        torch.nn.LeakyReLU(),
        torch.nn.Conv3d(4, 2, 3, padding=1),
    ).eval()
    x = torch.randn(1, 24, 20, 12)
    patch = (16, 12, 12)
    flips = [c for r in range(3) for c in itertools.combinations((0, 2), r)]
    ref = _reference_tta(net, x, patch, flips, 2)
    out = sliding_window_inference(
        net, x, patch, n_outputs=2, batch_size=batch_size, mirror_axes=(0, 2)
    )
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_bfloat16_precision_is_close_and_checked():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, padding=1),
        torch.nn.InstanceNorm3d(8, affine=True),
        torch.nn.LeakyReLU(),
        torch.nn.Conv3d(8, 2, 3, padding=1),
    ).eval()
    x = torch.randn(1, 20, 20, 20)
    a = sliding_window_inference(net, x, (16, 16, 16), n_outputs=2)
    b = sliding_window_inference(net, x, (16, 16, 16), n_outputs=2, precision="bfloat16")
    assert b.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: logits of order 1 agree to a few 1e-2
    torch.testing.assert_close(b, a, rtol=0, atol=0.1)
    assert float((b - a).abs().max()) > 0
    with pytest.raises(ValueError, match="precision"):
        sliding_window_inference(net, x, (16, 16, 16), n_outputs=2, precision="half")
