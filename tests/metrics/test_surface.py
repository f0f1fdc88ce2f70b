"""Surface-distance metrics: hand-worked cases, empty-mask policy, equality with peers.

Peer equalities are asserted with rtol 1e-6: our distance transforms run in float32
(relative error ~1e-7), MONAI returns float32, DeepMind and MedPy float64.

Several exact distance algorithms give the distances (see ``_surface``): with numba, the
ordered offset scan of ``_nearest`` with its plane-wise envelope transform for far
points; without it, a transform of the whole crop or the slice-wise search of
``_sliced_distances`` with its KD-tree fallback. The ``path`` fixture runs a test under
each of them, whatever the size of its masks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlens.errors import GeometryError
from medlens.metrics import (
    SurfaceMetrics,
    average_symmetric_surface_distance,
    hausdorff_distance,
    mean_average_surface_distance,
    normalized_surface_distance,
    percentile_hausdorff_distance,
    surface_distances,
    surface_metrics,
)
from medlens.metrics import _surface as surface_module
from medlens.metrics._surface import _area_table

RTOL = 1e-6
METHODS = ("surfel", "border")
PATHS = ("scan", "scan_envelope", "whole", "sliced", "sliced_fallback")


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Force a distance algorithm: the offset scan (numba), the scan with a radius so short
    that most points go to the plane-wise envelope transform; without the scan, the
    whole-crop transform, the slice-wise search, or the slice-wise search with a window
    so short that most points go to the KD-tree."""
    if request.param.startswith("scan"):
        pytest.importorskip("numba")
        if request.param == "scan_envelope":
            monkeypatch.setattr(surface_module, "_SCAN_MM", 1e-3)
        return request.param
    monkeypatch.setattr(surface_module, "_SCAN", False)
    if request.param == "whole":
        monkeypatch.setattr(surface_module, "_SLICED_MIN_VOXELS", 10**15)
    else:
        monkeypatch.setattr(surface_module, "_SLICED_MIN_VOXELS", 0)
    if request.param == "sliced_fallback":
        monkeypatch.setattr(surface_module, "_WINDOW_MM", 1e-3)
    return request.param


def _metrics(ref, pred, spacing, method, pooling="max_directed", tolerances=(1.0, 2.0), **kw):
    return surface_metrics(
        ref, pred, spacing=spacing, method=method, pooling=pooling, tolerances=tolerances, **kw
    )


# --------------------------------------------------------------------------- hand-worked cases
@pytest.mark.parametrize("method", METHODS)
def test_two_voxels_2mm_apart(method, path):
    a = np.zeros((3, 1, 1), dtype=bool)
    b = np.zeros((3, 1, 1), dtype=bool)
    a[0] = True
    b[2] = True
    sp = (1.0, 1.0, 1.0)
    m = _metrics(a, b, sp, method, tolerances=(0.99, 1.0, 2.0))
    if method == "border":
        # each mask is one border voxel, 2 mm from the other
        assert m.hausdorff == 2.0
        assert m.percentile_hausdorff == 2.0
        assert m.assd == 2.0 and m.masd == 2.0
        assert m.nsd == (0.0, 0.0, 1.0)
    else:
        # unit cubes [0,1] and [2,3] along axis 0: the near faces are 1 mm apart, the far faces
        # 2 mm, and the side faces (area 1 each, 4 per cube) span 1..2 mm in corner samples
        sd = surface_distances(a, b, spacing=sp, method="surfel")
        assert m.hausdorff == 2.0
        assert sorted(set(sd.distances_ref_to_pred.tolist())) == [1.0, 2.0]
        assert m.nsd[1] == pytest.approx(0.5)  # half of each surface's corners at 1 mm
        assert m.nsd[2] == 1.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.9)])
def test_one_voxel_shift(method, spacing, path):
    a = np.zeros((10, 8, 8), dtype=bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=0)
    tol = (spacing[0] * 0.999, spacing[0])
    m = _metrics(a, b, spacing, method, pooling="pooled", tolerances=tol)
    assert m.hausdorff == pytest.approx(spacing[0], rel=RTOL)
    # the faces normal to axis 0 (1/6 of each surface) move by one voxel: > 5 %
    assert m.percentile_hausdorff == pytest.approx(spacing[0], rel=RTOL)
    assert m.nsd[1] == 1.0
    assert 0.0 < m.nsd[0] < 1.0
    assert 0.0 < m.masd < spacing[0]


def test_distance_equal_to_tolerance_counts_as_within(path):
    # 2 voxels of 0.8 mm: float32 gives 1.6000000238 > 1.6; the lattice re-check must say 1.6
    a = np.zeros((5, 1, 1), dtype=bool)
    b = np.zeros((5, 1, 1), dtype=bool)
    a[0] = True
    b[2] = True
    sp = (0.8, 1.0, 1.0)
    assert normalized_surface_distance(a, b, spacing=sp, method="border", tolerance=1.6) == 1.0
    assert normalized_surface_distance(a, b, spacing=sp, method="border", tolerance=1.5999) == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_concentric_spheres_known_radii(method, shapes, path):
    sp = (0.5, 0.5, 0.5)
    shape = (64, 64, 64)
    c = (16.0, 16.0, 16.0)
    inner = shapes.ellipsoid(shape, sp, c, (9.0, 9.0, 9.0))
    outer = shapes.ellipsoid(shape, sp, c, (12.0, 12.0, 12.0))
    m = _metrics(inner, outer, sp, method, tolerances=(2.0, 4.0))
    # radii differ by 3 mm; voxelisation moves each surface by at most half a voxel diagonal
    slack = 0.5 * math.sqrt(3) * 0.5 + 0.5
    assert abs(m.hausdorff - 3.0) <= slack
    assert abs(m.assd - 3.0) <= slack
    assert abs(m.masd - 3.0) <= slack
    assert m.nsd == (0.0, 1.0)


def test_2d_square_shift():
    a = np.zeros((8, 8), dtype=bool)
    a[2:5, 2:5] = True
    b = np.roll(a, 1, axis=1)
    for method in METHODS:
        m = _metrics(a, b, (1.0, 3.0), method)
        assert m.hausdorff == pytest.approx(3.0, rel=RTOL)


# --------------------------------------------------------------------------- empty masks
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ndim", [2, 3])
def test_empty_policy(method, ndim, path):
    shape = (6,) * ndim
    sp = (1.0,) * ndim
    full = np.zeros(shape, dtype=bool)
    full[(slice(1, 4),) * ndim] = True
    empty = np.zeros(shape, dtype=bool)

    both = _metrics(empty, empty, sp, method)
    assert (both.hausdorff, both.percentile_hausdorff, both.assd, both.masd) == (0.0, 0.0, 0.0, 0.0)
    assert both.nsd == (1.0, 1.0)
    assert both.reference_empty and both.prediction_empty and not both.penalized

    for ref, pred, flag in ((empty, full, "reference_empty"), (full, empty, "prediction_empty")):
        m = _metrics(ref, pred, sp, method)
        assert math.isinf(m.hausdorff) and math.isinf(m.assd) and math.isinf(m.masd)
        assert math.isinf(m.percentile_hausdorff)
        assert m.nsd == (0.0, 0.0)
        assert getattr(m, flag) and m.penalized
        p = _metrics(ref, pred, sp, method, empty_penalty=374.0)
        assert (p.hausdorff, p.percentile_hausdorff, p.assd, p.masd) == (374.0,) * 4
        n = _metrics(ref, pred, sp, method, empty_penalty=math.nan)
        assert math.isnan(n.hausdorff) and n.penalized
        kw = {"spacing": sp, "method": method}
        assert hausdorff_distance(ref, pred, empty_penalty=5.0, **kw) == 5.0
        hdq = percentile_hausdorff_distance(ref, pred, pooling="pooled", empty_penalty=5.0, **kw)
        assert hdq == 5.0
        assert average_symmetric_surface_distance(ref, pred, empty_penalty=5.0, **kw) == 5.0
        assert mean_average_surface_distance(ref, pred, empty_penalty=5.0, **kw) == 5.0
        assert normalized_surface_distance(ref, pred, tolerance=1.0, **kw) == 0.0
    kw = {"spacing": sp, "method": method}
    assert hausdorff_distance(empty, empty, **kw) == 0.0
    assert normalized_surface_distance(empty, empty, tolerance=1.0, **kw) == 1.0


# --------------------------------------------------------------------------- argument checks
def test_argument_errors():
    a = np.zeros((4, 4, 4), dtype=bool)
    a[1:3, 1:3, 1:3] = True
    with pytest.raises(TypeError):
        hausdorff_distance(a, a, method="border")  # type: ignore[call-arg]  # spacing required
    with pytest.raises(GeometryError, match="3 axes"):
        hausdorff_distance(a, a, spacing=(1.0, 1.0), method="border")
    with pytest.raises(GeometryError, match="positive"):
        hausdorff_distance(a, a, spacing=(1.0, 0.0, 1.0), method="border")
    with pytest.raises(GeometryError, match="same shape"):
        hausdorff_distance(a, a[:3], spacing=(1.0, 1.0, 1.0), method="border")
    with pytest.raises(ValueError, match="method"):
        hausdorff_distance(a, a, spacing=(1.0, 1.0, 1.0), method="voxel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooling"):
        percentile_hausdorff_distance(
            a, a, spacing=(1, 1, 1), method="border", pooling="mean"  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="percentile"):
        percentile_hausdorff_distance(
            a, a, spacing=(1, 1, 1), method="border", pooling="pooled", percentile=101
        )
    with pytest.raises(GeometryError, match="axes"):
        hausdorff_distance(a[0, 0], a[0, 0], spacing=(1.0,), method="border")


def test_nsd_at_lookup():
    a = np.zeros((6, 6), dtype=bool)
    a[1:4, 1:4] = True
    m = _metrics(a, a, (1.0, 1.0), "border")
    assert isinstance(m, SurfaceMetrics)
    assert m.nsd_at(2.0) == 1.0
    with pytest.raises(KeyError):
        m.nsd_at(3.0)


def test_threads_do_not_change_results(rng, shapes):
    a = shapes.blob(rng, (30, 28, 20))
    b = shapes.blob(rng, (30, 28, 20))
    sp = (0.8, 0.9, 2.5)
    one = _metrics(a, b, sp, "surfel", threads=1)
    two = _metrics(a, b, sp, "surfel", threads=2)
    assert one == two


def test_crop_matches_uncropped_objects_at_array_edge(rng, shapes, path):
    # foreground touching the array boundary: crops must behave as if padded with background
    a = shapes.blob(rng, (20, 20, 12), fill=0.7)
    b = shapes.blob(rng, (20, 20, 12), fill=0.7)
    sp = (1.0, 1.2, 2.0)
    big_a = np.zeros((24, 24, 16), dtype=bool)
    big_b = np.zeros_like(big_a)
    big_a[2:22, 2:22, 2:14] = a
    big_b[2:22, 2:22, 2:14] = b
    for method in METHODS:
        assert _metrics(a, b, sp, method) == _metrics(big_a, big_b, sp, method)


def test_label_map_input_equals_boolean(rng, shapes):
    a = shapes.blob(rng, (16, 16, 10))
    b = shapes.blob(rng, (16, 16, 10))
    sp = (1.0, 1.0, 1.5)
    as_int = _metrics(a.astype(np.int16) * 3, b.astype(np.float32), sp, "surfel")
    assert as_int == _metrics(a, b, sp, "surfel")


def test_pooled_between_directed(rng, shapes):
    a = shapes.blob(rng, (24, 24, 16))
    b = shapes.blob(rng, (24, 24, 16))
    sp = (0.9, 0.9, 2.0)
    for method in METHODS:
        sd = surface_distances(a, b, spacing=sp, method=method)
        kw = {"spacing": sp, "method": method}
        pooled = percentile_hausdorff_distance(a, b, pooling="pooled", **kw)
        maxd = percentile_hausdorff_distance(a, b, pooling="max_directed", **kw)
        lo = min(
            np.percentile(sd.distances_ref_to_pred, 95), np.percentile(sd.distances_pred_to_ref, 95)
        )
        assert pooled <= maxd + 1e-12
        if method == "border":
            assert pooled >= lo - 1e-12


# --------------------------------------------------------------------------- lookup tables
def _bit_reverse(code: int, bits: int) -> int:
    return int(format(code, f"0{bits}b")[::-1], 2)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5), (0.3, 1.7, 0.9)])
def test_area_table_equals_deepmind(deepmind, spacing):
    ours = _area_table(spacing)
    theirs = deepmind.lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    # our bit 4a+2b+d is DeepMind's bit 7-(4a+2b+d)
    reordered = np.array([ours[_bit_reverse(c, 8)] for c in range(256)])
    np.testing.assert_allclose(reordered, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 2.3)])
def test_contour_table_equals_deepmind(deepmind, spacing):
    ours = _area_table(spacing)
    theirs = deepmind.lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    reordered = np.array([ours[_bit_reverse(c, 4)] for c in range(16)])
    np.testing.assert_allclose(reordered, theirs, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- peers
CASES = [
    # (seed, shape, spacing)
    (0, (28, 24, 18), (0.8, 0.8, 2.5)),
    (1, (20, 31, 17), (1.3, 0.45, 0.9)),
    (2, (40, 36), (0.6, 1.7)),
    (3, (33, 29), (1.0, 1.0)),
    (4, (16, 16, 16), (1.0, 1.0, 1.0)),
    (5, (22, 14, 26), (0.9, 2.0, 0.7)),  # the coarsest axis in the middle
]


def _pair(seed, shape, shapes):
    rng = np.random.default_rng(seed)
    fill = rng.uniform(0.2, 0.6)
    return shapes.blob(rng, shape, fill=fill), shapes.blob(rng, shape, fill=fill, smooth=1.5)


def _organ_pair(shapes):
    # a real-shaped anisotropic case: a perturbed ellipsoid against an offset, wobbled one
    shape, sp = (96, 88, 40), (0.8, 0.8, 2.5)
    ref = shapes.ellipsoid(shape, sp, (38.0, 35.0, 50.0), (30.0, 24.0, 38.0))
    pred = shapes.ellipsoid(shape, sp, (39.5, 34.0, 52.0), (29.0, 25.0, 36.0), wobble=0.06)
    return ref, pred, sp


def _deepmind_reference(dm, ref, pred, sp, tolerances):
    d = dm.compute_surface_distances(ref, pred, sp)
    a_r, a_p = d["surfel_areas_gt"], d["surfel_areas_pred"]
    d_r, d_p = d["distances_gt_to_pred"], d["distances_pred_to_gt"]
    assd = (np.sum(a_r * d_r) + np.sum(a_p * d_p)) / (np.sum(a_r) + np.sum(a_p))
    return {
        "hd": dm.compute_robust_hausdorff(d, 100),
        "hd95": dm.compute_robust_hausdorff(d, 95),
        "hd90": dm.compute_robust_hausdorff(d, 90),
        "masd": float(np.mean(dm.compute_average_surface_distance(d))),
        "assd": assd,
        "nsd": [dm.compute_surface_dice_at_tolerance(d, t) for t in tolerances],
    }


@pytest.mark.parametrize(("seed", "shape", "spacing"), CASES)
def test_surfel_equals_deepmind(seed, shape, spacing, shapes, deepmind, path):
    ref, pred = _pair(seed, shape, shapes)
    tol = (0.5, 1.0, 2.0, 3.3)
    want = _deepmind_reference(deepmind, ref, pred, spacing, tol)
    m = _metrics(ref, pred, spacing, "surfel", tolerances=tol)
    np.testing.assert_allclose(m.hausdorff, want["hd"], rtol=RTOL)
    np.testing.assert_allclose(m.percentile_hausdorff, want["hd95"], rtol=RTOL)
    np.testing.assert_allclose(m.masd, want["masd"], rtol=RTOL)
    np.testing.assert_allclose(m.assd, want["assd"], rtol=RTOL)
    np.testing.assert_allclose(m.nsd, want["nsd"], rtol=RTOL)
    hd90 = percentile_hausdorff_distance(
        ref, pred, spacing=spacing, method="surfel", pooling="max_directed", percentile=90
    )
    np.testing.assert_allclose(hd90, want["hd90"], rtol=RTOL)


def test_surfel_equals_deepmind_organ_shaped(shapes, deepmind, path):
    ref, pred, sp = _organ_pair(shapes)
    want = _deepmind_reference(deepmind, ref, pred, sp, (1.0, 2.0))
    m = _metrics(ref, pred, sp, "surfel")
    np.testing.assert_allclose(
        [m.hausdorff, m.percentile_hausdorff, m.masd, m.assd, *m.nsd],
        [want["hd"], want["hd95"], want["masd"], want["assd"], *want["nsd"]],
        rtol=RTOL,
    )


def _monai_reference(mn, ref, pred, sp, tolerances):
    out = {
        "hd": mn.call("compute_hausdorff_distance", ref, pred, spacing=sp),
        "hd95": mn.call("compute_hausdorff_distance", ref, pred, spacing=sp, percentile=95),
        "assd": mn.call("compute_average_surface_distance", ref, pred, spacing=sp, symmetric=True),
        "nsd": [
            mn.call("compute_surface_dice", ref, pred, class_thresholds=[t], spacing=sp)
            for t in tolerances
        ],
    }
    return out


@pytest.mark.parametrize(("seed", "shape", "spacing"), CASES)
def test_border_equals_monai(seed, shape, spacing, shapes, monai_metrics, path):
    ref, pred = _pair(seed, shape, shapes)
    tol = (0.5, 1.0, 2.0, 3.3)
    want = _monai_reference(monai_metrics, ref, pred, spacing, tol)
    m = _metrics(ref, pred, spacing, "border", tolerances=tol)
    np.testing.assert_allclose(m.hausdorff, want["hd"], rtol=RTOL)
    np.testing.assert_allclose(m.percentile_hausdorff, want["hd95"], rtol=RTOL)
    np.testing.assert_allclose(m.assd, want["assd"], rtol=RTOL)
    np.testing.assert_allclose(m.nsd, want["nsd"], rtol=RTOL)


def test_border_equals_monai_organ_shaped(shapes, monai_metrics, path):
    ref, pred, sp = _organ_pair(shapes)
    want = _monai_reference(monai_metrics, ref, pred, sp, (2.0,))
    m = _metrics(ref, pred, sp, "border", tolerances=(2.0,))
    np.testing.assert_allclose(
        [m.hausdorff, m.percentile_hausdorff, m.assd, *m.nsd],
        [want["hd"], want["hd95"], want["assd"], *want["nsd"]],
        rtol=RTOL,
    )


@pytest.mark.parametrize(("seed", "shape", "spacing"), CASES)
def test_border_equals_medpy(seed, shape, spacing, shapes, medpy_binary, path):
    ref, pred = _pair(seed, shape, shapes)
    mb = medpy_binary
    m = _metrics(ref, pred, spacing, "border", pooling="pooled")
    np.testing.assert_allclose(m.hausdorff, mb.hd(pred, ref, voxelspacing=spacing), rtol=RTOL)
    hd95 = mb.hd95(pred, ref, voxelspacing=spacing)
    np.testing.assert_allclose(m.percentile_hausdorff, hd95, rtol=RTOL)
    np.testing.assert_allclose(m.assd, mb.assd(pred, ref, voxelspacing=spacing), rtol=RTOL)
    masd = 0.5 * (mb.asd(pred, ref, voxelspacing=spacing) + mb.asd(ref, pred, voxelspacing=spacing))
    np.testing.assert_allclose(m.masd, masd, rtol=RTOL)


def test_thin_functions_equal_surface_metrics(rng, shapes):
    ref = shapes.blob(rng, (20, 22, 14))
    pred = shapes.blob(rng, (20, 22, 14))
    sp = (0.9, 1.1, 2.0)
    for method in METHODS:
        for pooling in ("pooled", "max_directed"):
            m = _metrics(ref, pred, sp, method, pooling=pooling, tolerances=(1.5,))
            kw = {"spacing": sp, "method": method}
            assert hausdorff_distance(ref, pred, **kw) == m.hausdorff
            hdq = percentile_hausdorff_distance(ref, pred, pooling=pooling, **kw)
            assert hdq == m.percentile_hausdorff
            assert average_symmetric_surface_distance(ref, pred, **kw) == m.assd
            assert mean_average_surface_distance(ref, pred, **kw) == m.masd
            assert normalized_surface_distance(ref, pred, tolerance=1.5, **kw) == m.nsd[0]


def test_fortran_ordered_inputs(rng, shapes, path):
    # nibabel returns Fortran-ordered arrays; results must not depend on the layout
    a = shapes.blob(rng, (18, 20, 12))
    b = shapes.blob(rng, (18, 20, 12))
    sp = (0.7, 1.1, 2.2)
    for method in METHODS:
        want = _metrics(a, b, sp, method)
        assert _metrics(np.asfortranarray(a), np.asfortranarray(b), sp, method) == want


@pytest.mark.parametrize(("seed", "shape", "spacing"), CASES[:3])
def test_surfel_nsd_equals_monai_subvoxels(seed, shape, spacing, shapes, monai_metrics, path):
    ref, pred = _pair(seed, shape, shapes)
    for tol in (1.0, 2.0):
        kw = {"class_thresholds": [tol], "spacing": spacing, "use_subvoxels": True}
        want = monai_metrics.call("compute_surface_dice", ref, pred, **kw)
        got = normalized_surface_distance(
            ref, pred, spacing=spacing, method="surfel", tolerance=tol
        )
        np.testing.assert_allclose(got, want, rtol=RTOL)


# --------------------------------------------------------------------------- internals
def _deepmind_percentile(dist, areas, q):
    # DeepMind: sort (distance, area) pairs, cumulative area fraction, first index >= q/100
    pairs = np.array(sorted(zip(dist.tolist(), areas.tolist(), strict=True)))
    cum = np.cumsum(pairs[:, 1]) / np.sum(pairs[:, 1])
    idx = np.searchsorted(cum, q / 100.0)
    return float(pairs[min(idx, len(pairs) - 1), 0])


def test_weighted_percentile_equals_deepmind_order(rng):
    from medlens.metrics._surface import _weighted_percentile

    for _ in range(200):
        n = int(rng.integers(1, 60))
        dist = rng.integers(0, 6, n) * 0.8  # many ties
        areas = rng.choice([0.25, 0.5, 1.0, 0.7071067811865476], n)
        for q in (0.0, 50.0, 90.0, 95.0, 100.0, float(rng.uniform(0, 100))):
            assert _weighted_percentile(dist, areas, q) == _deepmind_percentile(dist, areas, q)
    # the cumulative fraction lands exactly on q / 100 at the end of a run of equal distances
    dist = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    areas = np.array([0.5, 0.5, 0.5, 0.5, 3.0])
    for q in (20.0, 40.0):
        assert _weighted_percentile(dist, areas, q) == _deepmind_percentile(dist, areas, q)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int16, np.float32])
def test_bbox_of_crop_views(rng, dtype):
    from medlens.metrics._seg_utils import nonzero_bbox

    full = np.zeros((30, 26, 20), dtype=dtype)
    full[4:17, 9:21, 3:8] = (rng.random((13, 12, 5)) > 0.3).astype(dtype)
    full[4, 9, 3] = full[16, 20, 7] = 1
    view = full[2:25, 5:, 1:19]  # neither C- nor F-contiguous
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    assert nonzero_bbox(view) == ((2, 15), (4, 16), (2, 7))
    assert nonzero_bbox(view) == nonzero_bbox(np.ascontiguousarray(view))
    assert nonzero_bbox(np.zeros((5, 6, 7), dtype=dtype)[1:, 2:, :3]) is None


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("shape", [(3000, 420), (700, 40, 50), (5,), (1, 9, 2)])
def test_bbox_equals_nonzero_extent(rng, dtype, shape):
    # rows of 420 one-byte voxels make the block scan take several blocks from each end;
    # a few voxels at random places, a single voxel, and an empty array
    from medlens.metrics._seg_utils import nonzero_bbox

    for n_hits in (4, 1, 0):
        arr = np.zeros(shape, dtype=dtype)
        idx = tuple(rng.integers(0, s, n_hits) for s in shape)
        arr[idx] = 1
        nz = np.nonzero(arr)
        expected = (
            None if n_hits == 0 else tuple((int(i.min()), int(i.max()) + 1) for i in nz)
        )
        assert nonzero_bbox(arr) == expected
