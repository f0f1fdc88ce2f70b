import numpy as np
import pytest

from medlens.segmentation import (
    Calibration,
    Plans,
    dataset_fingerprint,
    fullres_target_spacing,
    plan_experiment,
    pool_and_conv_props,
    read_dataset,
)
from medlens.segmentation._fingerprint import CaseFingerprint, DatasetFingerprint, IntensityStats
from medlens.segmentation._plan import estimate_seconds_per_iteration, initial_patch_size


def test_pooling_topology_anisotropic_hand_worked():
    # spacing (1, 1, 3), patch 160x160x48: the z axis joins pooling once x/y reach 2 mm;
    # z stops at 6 voxels (< 8), x/y at 5 voxels
    strides, kernels, patch, div = pool_and_conv_props((1.0, 1.0, 3.0), (160, 160, 48))
    assert strides == [(1, 1, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 1)]
    assert kernels[0] == (3, 3, 1) and kernels[1] == (3, 3, 3)
    assert div == (32, 32, 8) and patch == (160, 160, 48)


def test_pooling_topology_isotropic_and_rounding():
    strides, _, patch, div = pool_and_conv_props((1.0, 1.0, 1.0), (128, 128, 128))
    assert len(strides) == 6 and div == (32, 32, 32)
    _, _, patch, div = pool_and_conv_props((1.0, 1.0, 1.0), (100, 130, 70))
    assert all(p % d == 0 for p, d in zip(patch, div, strict=False))
    # 100 -> 50 -> 25 -> 13 -> 7: 4 pools; 130 -> ... -> 9 -> 5: 5 pools;
    # 70 -> 35 -> 18 -> 9 -> 5: 4 pools
    assert div == (16, 32, 16)
    assert patch == (112, 160, 80)


def test_target_spacing_anisotropy_rule():
    sp = np.array([[0.8, 0.8, 5.0], [0.7, 0.7, 5.0], [0.9, 0.9, 1.5]])
    sh = np.array([[512, 512, 40], [512, 512, 44], [512, 512, 130]])
    target, why = fullres_target_spacing(sp, sh)
    assert target == pytest.approx((0.8, 0.8, 2.2))  # 10th percentile of (1.5, 5, 5)
    assert "10th percentile" in why
    # anisotropic spacing but not fewer voxels: plain median
    sh2 = np.array([[100, 100, 90]] * 3)
    assert fullres_target_spacing(sp, sh2)[0] == pytest.approx((0.8, 0.8, 5.0))


def test_initial_patch():
    assert initial_patch_size((1.0, 1.0, 1.0), (300, 300, 100)) == (256, 256, 100)
    # 2 mm in z halves that axis relative to the others: 256^3 volume kept
    p = initial_patch_size((1.0, 1.0, 2.0), (1000, 1000, 1000))
    assert p == (323, 323, 161)


def _fp(spacings, shapes, rel=1.0, channel="MRI"):
    cases = tuple(
        CaseFingerprint(
            f"c{i}",
            tuple(s),
            tuple(np.round(np.array(sh) / rel ** (1 / 3)).astype(int)),
            tuple(sh),
            {},
            (),
        )
        for i, (s, sh) in enumerate(zip(spacings, shapes, strict=False))
    )
    st = IntensityStats(0.0, 1.0, 0.0, -1.0, 1.0, -1.0, 1.0)
    return DatasetFingerprint("t", (channel,), {"background": 0, "fg": 1}, cases, (st,))


def test_plan_without_budget_is_nnunet():
    fp = _fp([(1.0, 1.0, 1.0)] * 3, [(160, 160, 160)] * 3)
    plans = plan_experiment(fp)
    full = plans.configurations["3d_fullres"]
    assert full.spacing == (1.0, 1.0, 1.0)
    assert full.network.features[0] == 32 and max(full.network.features) <= 320
    assert full.batch_size >= 2
    assert full.memory_bytes <= 8 * 2**30
    assert plans.configurations["2d"].spatial_dims == 2
    assert plans.default_configuration == "3d_fullres"
    assert plans.configurations["3d_fullres"].normalization == ("zscore",)


def test_lowres_config_when_patch_is_small():
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(400, 400, 400)] * 2)
    plans = plan_experiment(fp, memory_budget_gb=2.0)
    assert "3d_lowres" in plans.configurations
    low = plans.configurations["3d_lowres"]
    assert min(low.spacing) > 1.0
    assert np.prod(low.patch_size) / np.prod(low.median_shape) >= 0.25


def test_mask_rule_and_ct():
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(64, 64, 64)] * 2, rel=0.5)
    assert plan_experiment(fp).configurations["3d_fullres"].use_mask_for_norm == (True,)
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(64, 64, 64)] * 2, rel=0.5, channel="CT")
    cfg = plan_experiment(fp).configurations["3d_fullres"]
    assert cfg.normalization == ("CT",) and cfg.use_mask_for_norm == (False,)


@pytest.mark.parametrize("budget", [60.0, 600.0, 6000.0])
def test_time_budget_fits(budget):
    cal = Calibration(per_activation=2e-8, per_flop=5e-11, overhead=0.02, threads=2)
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(180, 200, 180)] * 2)
    plans = plan_experiment(fp, time_budget_s=budget, calibration=cal, min_iterations=200)
    cfg = plans.configurations[plans.default_configuration]
    assert cfg.name == "3d_cpu"
    train_s = budget * 0.75
    t = estimate_seconds_per_iteration(cfg.network, cfg.patch_size, cfg.batch_size, cal)
    assert t == pytest.approx(cfg.seconds_per_iteration)
    assert cfg.iterations * t <= train_s * 1.0001
    assert any("time budget" in e for e in plans.explain)


def test_more_budget_never_coarser():
    cal = Calibration(per_activation=2e-8, per_flop=5e-11, overhead=0.02, threads=2)
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(180, 200, 180)] * 2)
    sp = [
        plan_experiment(fp, time_budget_s=b, calibration=cal).configurations["3d_cpu"].spacing[0]
        for b in (120, 1200, 12000)
    ]
    assert sp[0] >= sp[1] >= sp[2]


def test_plans_roundtrip_and_explain(tiny_dataset, tmp_path):
    ds = read_dataset(tiny_dataset)
    fp = dataset_fingerprint(ds, workers=1)
    assert fp.cases[0].shape_after_crop == (23, 24, 12)  # the zero first slab is cropped
    assert fp.intensity[0].percentile_99_5 > fp.intensity[0].percentile_00_5
    plans = plan_experiment(fp, time_budget_s=120, calibration=Calibration.default())
    plans.save(tmp_path / "plans.json")
    back = Plans.load(tmp_path / "plans.json")
    assert back.to_dict() == plans.to_dict()
    assert back.configurations["3d_cpu"].network == plans.configurations["3d_cpu"].network
    assert len(back.explain) >= 5
    fp.save(tmp_path / "fp.json")
    assert type(fp).load(tmp_path / "fp.json").cases[0].spacing == (1.0, 1.0, 2.0)


def test_mednext_architecture_is_planned():
    fp = _fp([(1.0, 1.0, 1.0)] * 2, [(96, 96, 96)] * 2)
    cal = Calibration(per_activation=2e-8, per_flop=5e-11, overhead=0.02, threads=2)
    plans = plan_experiment(fp, architecture="mednext", time_budget_s=600, calibration=cal)
    assert {c.network.architecture for c in plans.configurations.values()} == {"mednext"}


def test_budget_search_coarsens_thin_slices_in_plane_beyond_the_short_axis():
    # phantom-kidney's grid: 0.8x0.8x3 mm, 160x160x64 voxels. The search coarsens the
    # in-plane axes first; the 64 thick slices (never coarsened here) must not cap the
    # factor at 64/48 = x1.33, which left no plan reaching min_iterations
    cal = Calibration(per_activation=5.5e-8, per_flop=0.0, overhead=0.02, threads=1)
    fp = _fp([(0.8, 0.8, 3.0)] * 6, [(160, 160, 64)] * 6, channel="CT")
    plans = plan_experiment(
        fp, time_budget_s=690.0, calibration=cal, reserve_fraction=0.1, min_iterations=1000
    )
    cfg = plans.configurations["3d_cpu"]
    assert cfg.iterations >= 1000
    assert cfg.spacing[2] == 3.0
    assert cfg.spacing[0] == cfg.spacing[1] > 0.8 * 64 / 48
    # never below 48 voxels along a coarsened axis
    assert min(cfg.median_shape[:2]) >= 48


def test_max_coarsening_counts_only_coarsened_axes():
    from medlens.segmentation._plan import _coarsened_spacing, _max_coarsening

    f = _max_coarsening((0.8, 0.8, 3.0), (160, 160, 64), 48)
    assert f == pytest.approx(160 / 48)
    assert _coarsened_spacing((0.8, 0.8, 3.0), f).tolist() == pytest.approx([8 / 3, 8 / 3, 3.0])
    # isotropic: the shortest axis decides, as before (the brain demo's x3.6875)
    assert _max_coarsening((1.0, 1.0, 1.0), (181, 215, 177), 48) == 177 / 48
    # an axis already under the limit stops the search where it would start to coarsen
    f = _max_coarsening((1.0, 1.0, 4.0), (200, 200, 30), 48)
    assert f == pytest.approx(4.0, rel=1e-5) and _coarsened_spacing((1.0, 1.0, 4.0), f)[2] == 4.0
    assert _max_coarsening((1.0, 4.0, 4.0), (40, 200, 30), 48) == 1.0
    assert _max_coarsening((1.0, 1.0, 1.0), (40, 200, 200), 48) == 1.0
