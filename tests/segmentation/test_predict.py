import itertools

import numpy as np
import pytest
import torch

from medlens.image import Image
from medlens.io import read_image, write_image
from medlens.segmentation import preprocess_dataset
from medlens.segmentation._predict import Predictor, apply_postprocessing, load_predictor
from medlens.segmentation._train import TrainConfig, train

from .conftest import make_case, tiny_plans, write_dataset


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    root = write_dataset(tmp / "D", n=2)
    ds, plans = tiny_plans(root, iterations=2)
    pre = preprocess_dataset(ds, plans, tmp / "pre", workers=1, progress=False)
    train(pre, plans, tmp / "model", config=TrainConfig(num_workers=0, threads=1), progress=False)
    return tmp / "model"


def _rotated_affine():
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[-c, -s, 0], [s, -c, 0], [0, 0, 1.0]])  # LPS-ish, rotated about S
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.9, 1.1, 2.0])
    aff[:3, 3] = [10.0, -20.0, 5.0]
    return aff


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_prediction_keeps_input_geometry(model_dir, tmp_path, suffix):
    pred = load_predictor(model_dir, threads=1)
    img, _ = make_case(np.random.default_rng(3), shape=(20, 26, 10))
    img = Image(np.asarray(img.array), _rotated_affine())
    path = tmp_path / f"in{suffix}"
    write_image(img, path)
    src = read_image(path)
    lab, probs = pred.predict(src, mirror=False, return_probabilities=True)
    assert lab.spatial_shape == src.spatial_shape
    np.testing.assert_allclose(lab.affine, src.affine, atol=1e-6)
    assert set(np.unique(lab.array)) <= {0, 1, 2}
    assert (
        probs is not None and probs.dtype == np.float16 and probs.shape == (3, *src.spatial_shape)
    )
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=2e-3)
    out = tmp_path / f"out{suffix}"
    write_image(lab, out)
    back = read_image(out)
    assert back.spatial_shape == src.spatial_shape
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(back.array), np.asarray(lab.array))


def test_to_input_grid_on_same_grid_is_argmax(model_dir):
    pred = load_predictor(model_dir)
    rng = np.random.default_rng(0)
    p = rng.random((3, 6, 5, 4)).astype(np.float32)
    p /= p.sum(0)
    aff = np.diag([1.5, 1.0, 2.0, 1.0])
    lab, probs = pred.to_input_grid(
        Image(p, aff, channels=True),
        Image(np.zeros((6, 5, 4)), aff),
        return_probabilities=True,
        slab=3,
    )
    np.testing.assert_array_equal(lab.array, np.argmax(p, 0))
    np.testing.assert_allclose(probs, p, atol=1e-3)


def test_region_outputs_follow_class_order(tmp_path):
    root = write_dataset(tmp_path / "R", n=2, regions=True)
    _ds, plans = tiny_plans(root, iterations=1)
    pr = Predictor(plans, plans.configurations["tiny"], [], [], {})
    probs = np.zeros((2, 4, 1, 1), np.float32)
    probs[0, 1:] = 0.9  # whole tumour
    probs[1, 2:] = 0.8  # core
    aff = np.eye(4)
    lab, _ = pr.to_input_grid(Image(probs, aff, channels=True), Image(np.zeros((4, 1, 1)), aff))
    assert lab.array[:, 0, 0].tolist() == [0, 1, 2, 2]


def test_postprocessing_keeps_largest_component(tmp_path):
    root = write_dataset(tmp_path / "P", n=2)
    _, plans = tiny_plans(root, iterations=1)
    lab = np.zeros((10, 10, 3), np.uint8)
    lab[1:5, 1:5, :] = 1
    lab[8, 8, 1] = 1
    lab[7, 1, 1] = 2
    out = apply_postprocessing(lab, plans, {"outer": True, "core": False})
    assert out[8, 8, 1] == 0 and out[2, 2, 1] == 1 and out[7, 1, 1] == 2


def test_fold_ensemble_averages_networks(model_dir):
    pred = load_predictor(model_dir)
    single = pred.predict_logits(
        np.random.default_rng(1).normal(size=(1, 16, 16, 8)).astype(np.float32), mirror=False
    )
    pred2 = Predictor(pred.plans, pred.configuration, pred.networks * 2, ["a", "b"], {})
    double = pred2.predict_logits(
        np.random.default_rng(1).normal(size=(1, 16, 16, 8)).astype(np.float32), mirror=False
    )
    torch.testing.assert_close(single, double, rtol=1e-5, atol=1e-6)


def test_2d_configuration_trains_and_predicts_volumes(tmp_path):
    root = write_dataset(tmp_path / "D2", n=2)
    ds, plans = tiny_plans(root, patch=(16, 16), iterations=2, dims=2)
    cfg = plans.configurations["tiny"]
    assert cfg.spatial_dims == 2 and cfg.slice_axis == 2  # the coarse (2 mm) axis
    pre = preprocess_dataset(ds, plans, tmp_path / "pre", workers=1, progress=False)
    train(pre, plans, tmp_path / "m", config=TrainConfig(num_workers=0, threads=1), progress=False)
    pred = load_predictor(tmp_path / "m")
    img = read_image(ds.test[0].images[0])
    lab, _ = pred.predict(img, mirror=True)
    assert lab.spatial_shape == img.spatial_shape
    np.testing.assert_allclose(lab.affine, img.affine, atol=1e-6)


def _general_mapping(pr, net_img, like):
    """Reference: every channel through medlens.image.resample (the general path)."""
    shape = like.spatial_shape
    lab = np.zeros(shape, np.uint8)
    probs = np.zeros((net_img.n_channels, *shape), np.float16)
    pr._map_general(net_img, like, lab, probs, pr.label_values, 4)
    return lab, probs


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_separable_mapping_equals_general_resampling(model_dir, perm):
    # axis-aligned grids (permuted, flipped, scaled, partly outside): the separable
    # fast path must give the labels and probabilities of per-channel resampling
    pred = load_predictor(model_dir)
    pred.postprocessing, pred.fill_holes = {}, {}
    rng = np.random.default_rng(sum(p * 3**i for i, p in enumerate(perm)))
    net_shape = (9, 7, 6)
    p = rng.random((3, *net_shape)).astype(np.float32)
    p /= p.sum(0)
    net_aff = np.diag([2.0, 2.5, 3.0, 1.0])
    net_aff[:3, 3] = [1.0, -2.0, 0.5]
    out_shape = (17, 13, 11)
    a = np.zeros((3, 3))
    for i, j in enumerate(perm):
        a[j, i] = rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.6)
    like_aff = np.eye(4)
    like_aff[:3, :3] = a
    centre_net = net_aff[:3, :3] @ (np.array(net_shape) - 1) / 2 + net_aff[:3, 3]
    like_aff[:3, 3] = centre_net - a @ (np.array(out_shape) - 1) / 2 + rng.uniform(-3, 3, 3)
    net_img = Image(p, net_aff, channels=True)
    like = Image(np.zeros(out_shape), like_aff)
    lab, probs = pred.to_input_grid(net_img, like, return_probabilities=True, slab=5)
    ref_lab, ref_probs = _general_mapping(pred, net_img, like)
    assert probs is not None
    # float16 storage of float32 values that agree to rounding: at most one float16 step
    np.testing.assert_allclose(probs.astype(np.float32), ref_probs.astype(np.float32), atol=5e-4)
    np.testing.assert_array_equal(lab.array, ref_lab)
    assert 0 < int((ref_lab == 0).sum()) < ref_lab.size  # part inside, part outside the grid


def test_rotated_grid_uses_general_resampling(model_dir):
    pred = load_predictor(model_dir)
    pred.postprocessing, pred.fill_holes = {}, {}
    rng = np.random.default_rng(5)
    p = rng.random((3, 8, 8, 6)).astype(np.float32)
    p /= p.sum(0)
    net_img = Image(p, np.diag([2.0, 2.0, 2.0, 1.0]), channels=True)
    aff = _rotated_affine() @ np.diag([0.5, 0.5, 0.5, 1.0])
    aff[:3, 3] = [2.0, 3.0, 1.0]
    like = Image(np.zeros((12, 10, 8)), aff)
    lab, probs = pred.to_input_grid(net_img, like, return_probabilities=True, slab=3)
    ref_lab, ref_probs = _general_mapping(pred, net_img, like)
    np.testing.assert_array_equal(lab.array, ref_lab)
    np.testing.assert_array_equal(probs, ref_probs)


def test_bfloat16_prediction_close_to_float32(model_dir):
    pred = load_predictor(model_dir, threads=1)
    x = np.random.default_rng(2).normal(size=(1, 16, 16, 8)).astype(np.float32)
    a = pred.predict_logits(x, mirror=True)
    b = pred.predict_logits(x, mirror=True, precision="bfloat16")
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(b, a, rtol=0, atol=0.05)  # probabilities, bf16 has 8 bits
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="precision"):
        pred.predict_logits(x, precision="float16")
