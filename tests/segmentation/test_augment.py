import numpy as np
import torch

from medlens.segmentation._augment import AugmentConfig, augment_batch, sample_parameters


def _identity(n):
    return [
        dict(
            angles=[0.0, 0.0, 0.0],
            scale=1.0,
            mirror=[],
            noise_std=0.0,
            noise_seed=0,
            blur_sigma=0.0,
            brightness=1.0,
            contrast=1.0,
            lowres=1.0,
            gamma=1.0,
            gamma_inverted=1.0,
        )
        for _ in range(n)
    ]


def test_identity_is_centre_crop_and_spatial_path_agrees():
    img = torch.randn(2, 1, 12, 14, 10)
    tgt = (img > 0).to(torch.int16)
    a, b = augment_batch(img, tgt, (8, 10, 6), _identity(2))
    torch.testing.assert_close(a, img[:, :, 2:10, 2:12, 2:8])
    p = _identity(2)
    p[0]["scale"] = 1.0 + 1e-7  # forces the grid_sample path
    a2, b2 = augment_batch(img, tgt, (8, 10, 6), p)
    torch.testing.assert_close(a2, a, rtol=1e-4, atol=1e-4)
    assert torch.equal(b2, b)


def test_rotation_by_90_degrees_rotates_labels():
    tgt = torch.zeros(1, 1, 9, 9, 1, dtype=torch.int16)
    tgt[0, 0, 6, 4, 0] = 1
    img = tgt.float()
    p = _identity(1)
    p[0]["angles"] = [0.0, 0.0, np.pi / 2]  # about the third axis: (i, j) plane
    _, b = augment_batch(img, tgt, (9, 9, 1), p)
    idx = torch.nonzero(b[0, 0, :, :, 0]).tolist()
    assert idx in ([[4, 2]], [[4, 6]])  # 90 degrees either way keeps it on the ring


def test_mirror_flips_image_and_label_together():
    img = torch.arange(2 * 1 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4, 4)
    tgt = (img % 3 == 0).to(torch.int16)
    p = _identity(2)
    p[1]["mirror"] = [0, 2]
    a, b = augment_batch(img, tgt, (4, 4, 4), p)
    torch.testing.assert_close(a[1], torch.flip(img[1], [1, 3]))
    assert torch.equal(b[1], torch.flip(tgt[1], [1, 3]))
    assert torch.equal(b[0], tgt[0])


def test_parameters_are_seeded_and_intensity_ops_keep_labels():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    cfg = AugmentConfig(p_noise=1, p_blur=1, p_brightness=1, p_contrast=1, p_lowres=1, p_gamma=1)
    p1, p2 = sample_parameters(cfg, 3, 3, g1), sample_parameters(cfg, 3, 3, g2)
    assert p1 == p2
    img = torch.randn(3, 1, 10, 10, 10)
    tgt = (img > 0.5).to(torch.int16)
    for p in p1:
        p["angles"], p["scale"], p["mirror"] = [0.0, 0.0, 0.0], 1.0, []
    a, b = augment_batch(img, tgt, (10, 10, 10), p1)
    assert torch.equal(b, tgt) and torch.isfinite(a).all() and not torch.allclose(a, img)
