"""Lesion-wise metrics: BraTS 2023 and ISLES'22 official definitions, detection and PQ.

The official definitions are restated below as direct full-volume loops (scipy labelling,
no cropping) following the official code's steps, and compared with the optimised,
cropped implementation on constructed edge cases and random multi-lesion cases. The
HD95 inside the BraTS restatement comes from DeepMind surface-distance itself, as in the
official code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medlens.metrics import (
    BRATS2023_LESION_PARAMETERS,
    BraTSLesionParameters,
    absolute_lesion_count_difference,
    brats_lesion_wise,
    connected_components,
    lesion_detection,
    lesion_f1,
    panoptic_quality,
)

GLI = BRATS2023_LESION_PARAMETERS["BraTS-GLI"]
MET = BRATS2023_LESION_PARAMETERS["BraTS-MET"]
FULL26 = np.ones((3, 3, 3), dtype=bool)


# --------------------------------------------------------------------------- restatements
def official_brats(ref, pred, spacing, params, dm):
    """BraTS-2023-Metrics get_lesion_wise_score + get_lesion_wise_results, step by step."""
    struct = ndimage.generate_binary_structure(3, 2)
    it = params.dilation_iterations
    penalty = params.hd95_penalty
    gt_cc, _ = ndimage.label(ref, FULL26)
    pred_cc, n_pred = ndimage.label(pred, FULL26)
    dil = ndimage.binary_dilation(ref, structure=struct, iterations=it) if it else ref
    dil_cc, n_dil = ndimage.label(dil, FULL26)
    merged = np.where(gt_cc > 0, dil_cc, 0)
    tp_labels, rows = [], []
    for k in range(1, n_dil + 1):
        gt_k = merged == k
        gt_k_dil = ndimage.binary_dilation(gt_k, structure=struct, iterations=it) if it else gt_k
        hit = [int(v) for v in np.unique(pred_cc[gt_k_dil]) if v != 0]
        tp_labels += hit
        pred_k = np.isin(pred_cc, hit)
        dice = 2 * np.sum(gt_k & pred_k) / (np.sum(gt_k) + np.sum(pred_k))
        sd = dm.compute_surface_distances(gt_k, pred_k, spacing)
        hd = dm.compute_robust_hausdorff(sd, 95)
        vol = np.sum(gt_k) * np.prod(spacing)
        rows.append((len(hit), vol, dice, penalty if np.isinf(hd) else hd))
    n_fp = len(set(range(1, n_pred + 1)) - set(tp_labels))
    kept = [r for r in rows if r[1] > params.volume_threshold]
    den = len(kept) + n_fp
    ldice = sum(r[2] for r in kept) / den if den else 1.0
    lhd = (sum(r[3] for r in kept) + penalty * n_fp) / den if den else 0.0
    n_tp = sum(1 for r in kept if r[0] > 0)
    n_fn = sum(1 for r in kept if r[0] == 0)
    return ldice, lhd, n_tp, n_fp, n_fn


def official_isles_f1(ref, pred, empty_value=1.0):
    """ISLES'22 compute_lesion_f1_score (docker evaluation), scipy labelling, 26-connected."""
    tp = fp = fn = 0
    inter = ref & pred
    lab, n = ndimage.label(ref, FULL26)
    for i in range(1, n + 1):
        if (inter & (lab == i)).any():
            tp += 1
        else:
            fn += 1
    lab_p, n_p = ndimage.label(pred, FULL26)
    for i in range(1, n_p + 1):
        if not ((lab_p == i) & ref).any():
            fp += 1
    if tp + fp + fn == 0:
        return empty_value
    return tp / (tp + (fp + fn) / 2)


def cube(arr, corner, size, value=True):
    i, j, k = corner
    arr[i : i + size, j : j + size, k : k + size] = value


# --------------------------------------------------------------------------- components
def test_connectivity_options():
    m = np.zeros((3, 3, 3), dtype=bool)
    m[0, 0, 0] = m[1, 1, 0] = m[2, 2, 1] = True  # edge-neighbours, then a corner-neighbour
    assert connected_components(m, connectivity=6)[1] == 3
    assert connected_components(m, connectivity=18)[1] == 2
    assert connected_components(m, connectivity=26)[1] == 1
    m2 = np.zeros((3, 3), dtype=bool)
    m2[0, 0] = m2[1, 1] = True
    assert connected_components(m2, connectivity=4)[1] == 2
    assert connected_components(m2, connectivity=8)[1] == 1
    with pytest.raises(ValueError, match="connectivity"):
        connected_components(m, connectivity=8)
    with pytest.raises(ValueError, match="connectivity"):
        connected_components(m2, connectivity=26)


# --------------------------------------------------------------------------- ISLES'22
def test_isles_f1_hand_cases():
    e = np.zeros((8, 8, 8), dtype=bool)
    a = e.copy()
    cube(a, (0, 0, 0), 2)
    cube(a, (5, 5, 5), 2)
    p = e.copy()
    cube(p, (1, 1, 1), 2)  # touches the first lesion
    p[7, 0, 7] = True  # false positive
    # tp = 1, fn = 1, fp = 1 -> 1 / (1 + 1)
    assert lesion_f1(a, p) == 0.5
    assert lesion_f1(e, e) == 1.0
    assert lesion_f1(e, e, empty_value=0.0) == 0.0
    assert lesion_f1(e, p) == 0.0
    assert lesion_f1(a, e) == 0.0
    assert absolute_lesion_count_difference(a, p) == 0
    assert absolute_lesion_count_difference(a, e) == 2
    assert absolute_lesion_count_difference(e, e) == 0
    # diagonal voxels are one lesion at 26-connectivity, three at 6
    d = e.copy()
    d[0, 0, 0] = d[1, 1, 1] = d[2, 2, 2] = True
    assert absolute_lesion_count_difference(d, e) == 1
    assert absolute_lesion_count_difference(d, e, connectivity=6) == 3


@pytest.mark.parametrize("seed", range(6))
def test_isles_f1_equals_official(seed):
    rng = np.random.default_rng(seed)
    ref = ndimage.binary_opening(rng.random((24, 24, 16)) > 0.8)
    pred = ndimage.binary_opening(rng.random((24, 24, 16)) > 0.8)
    pred |= rng.random((24, 24, 16)) > 0.995
    assert lesion_f1(ref, pred) == pytest.approx(official_isles_f1(ref, pred), rel=1e-12)
    _, n_r = ndimage.label(ref, FULL26)
    _, n_p = ndimage.label(pred, FULL26)
    assert absolute_lesion_count_difference(ref, pred) == abs(n_p - n_r)


# --------------------------------------------------------------------------- BraTS 2023
def test_brats_both_empty_and_one_empty():
    e = np.zeros((12, 12, 12), dtype=bool)
    r = brats_lesion_wise(e, e, spacing=(1, 1, 1), parameters=GLI)
    assert (r.lesion_dice, r.lesion_hd95, r.n_tp, r.n_fp, r.n_fn) == (1.0, 0.0, 0, 0, 0)
    assert (r.legacy_dice, r.legacy_hd95) == (1.0, 0.0)
    big = e.copy()
    cube(big, (2, 2, 2), 5)  # 125 mm³ > 50
    r = brats_lesion_wise(e, big, spacing=(1, 1, 1), parameters=GLI)  # only false positives
    assert (r.lesion_dice, r.lesion_hd95, r.n_fp) == (0.0, 374.0, 1)
    assert (r.legacy_dice, r.legacy_hd95) == (0.0, 374.0)
    r = brats_lesion_wise(big, e, spacing=(1, 1, 1), parameters=GLI)  # missed lesion
    assert (r.lesion_dice, r.lesion_hd95, r.n_tp, r.n_fn) == (0.0, 374.0, 0, 1)
    assert r.lesions[0].matched == () and r.lesions[0].hd95 == 374.0


def test_brats_dilation_merges_close_lesions():
    ref = np.zeros((30, 12, 12), dtype=bool)
    cube(ref, (2, 2, 2), 4)
    cube(ref, (10, 2, 2), 4)  # gap of 4 voxels: merged by 3 iterations (3 + 3 > 4), not by 1
    cube(ref, (22, 2, 2), 4)  # gap of 8: separate
    pred = ref.copy()
    r3 = brats_lesion_wise(ref, pred, spacing=(1, 1, 1), parameters=BraTSLesionParameters(3, 50.0))
    assert len(r3.lesions) == 2
    assert sorted(les.volume for les in r3.lesions) == [64.0, 128.0]
    r1 = brats_lesion_wise(ref, pred, spacing=(1, 1, 1), parameters=BraTSLesionParameters(1, 50.0))
    assert len(r1.lesions) == 3
    assert r3.lesion_dice == 1.0 and r1.lesion_dice == 1.0
    # 64 mm³ lesions are counted with threshold 50 ...
    assert r1.n_tp == 3
    # ... but not with a higher threshold: left out of scores and counts, matches not FP
    hi = BraTSLesionParameters(1, 100.0)
    r_hi = brats_lesion_wise(ref, pred, spacing=(1, 1, 1), parameters=hi)
    assert (r_hi.n_tp, r_hi.n_fp, r_hi.n_fn) == (0, 0, 0)
    assert (r_hi.lesion_dice, r_hi.lesion_hd95) == (1.0, 0.0)


def test_brats_small_lesion_threshold_and_false_positive_penalty():
    ref = np.zeros((20, 20, 20), dtype=bool)
    cube(ref, (2, 2, 2), 5)  # 125 mm³
    cube(ref, (14, 14, 14), 3)  # 27 mm³ <= 50: not counted
    pred = np.zeros_like(ref)
    cube(pred, (3, 2, 2), 5)  # shifted hit of the big lesion
    cube(pred, (15, 14, 14), 2)  # hits the small lesion: neither TP counted nor FP
    pred[2, 17, 17] = True  # one-voxel false positive
    r = brats_lesion_wise(ref, pred, spacing=(1, 1, 1), parameters=GLI)
    big = next(les for les in r.lesions if les.counted)
    assert (r.n_tp, r.n_fp, r.n_fn) == (1, 1, 0)
    assert big.dice == pytest.approx(2 * 100 / 250)
    assert r.lesion_dice == pytest.approx(big.dice / 2)
    assert r.lesion_hd95 == pytest.approx((big.hd95 + 374.0) / 2)


def test_brats_near_miss_inside_dilation_is_a_match_with_dice_zero():
    ref = np.zeros((20, 20, 20), dtype=bool)
    cube(ref, (2, 2, 2), 5)
    pred = np.zeros_like(ref)
    cube(pred, (9, 2, 2), 3)  # 2 voxels away: inside the 3-iteration search region
    r = brats_lesion_wise(ref, pred, spacing=(1, 1, 1), parameters=GLI)
    assert (r.n_tp, r.n_fp, r.n_fn) == (1, 0, 0)
    assert r.lesions[0].dice == 0.0
    assert math.isfinite(r.lesions[0].hd95) and r.lesions[0].hd95 < 374.0
    far = np.zeros_like(ref)
    cube(far, (12, 2, 2), 3)  # 5 voxels away: a false positive and a missed lesion
    r = brats_lesion_wise(ref, far, spacing=(1, 1, 1), parameters=GLI)
    assert (r.n_tp, r.n_fp, r.n_fn) == (0, 1, 1)
    assert (r.lesion_dice, r.lesion_hd95) == (0.0, 374.0)


def test_brats_dilation_is_clipped_at_the_array_edge(deepmind):
    # lesions close to the array boundary: the crop must not dilate beyond the array
    ref = np.zeros((10, 10, 10), dtype=bool)
    cube(ref, (0, 0, 0), 3)
    cube(ref, (0, 6, 0), 3)
    pred = np.zeros_like(ref)
    cube(pred, (0, 1, 0), 3)
    want = official_brats(ref, pred, (1.0, 1.0, 1.0), MET, deepmind)
    r = brats_lesion_wise(ref, pred, spacing=(1.0, 1.0, 1.0), parameters=MET)
    got = (r.lesion_dice, r.lesion_hd95, r.n_tp, r.n_fp, r.n_fn)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _multi_lesion_case(seed):
    """Several reference lesions; a prediction that misses some, grows or shrinks the others,
    and adds false-positive blobs and one-voxel specks."""
    rng = np.random.default_rng(100 + seed)
    shape = (40, 36, 30)

    def blobs(fill):
        noise = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
        return noise > np.quantile(noise, 1 - fill)

    ref = blobs(0.08)
    lab, n = ndimage.label(ref, FULL26)
    keep = rng.random(n + 1) > 0.25  # about a quarter of the lesions are missed
    keep[0] = False
    pred = keep[lab]
    pred = ndimage.binary_dilation(pred) if seed % 2 else ndimage.binary_erosion(pred)
    pred |= blobs(0.01)
    pred |= rng.random(shape) > 0.99997
    return ref, pred


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", ["BraTS-GLI", "BraTS-MET"])
def test_brats_equals_official_on_random_multi_lesion_cases(seed, name, deepmind):
    params = BRATS2023_LESION_PARAMETERS[name]
    ref, pred = _multi_lesion_case(seed)
    spacing = (1.0, 1.0, 1.0) if seed % 2 == 0 else (1.2, 0.9, 1.1)
    want = official_brats(ref, pred, spacing, params, deepmind)
    r = brats_lesion_wise(ref, pred, spacing=spacing, parameters=params)
    got = (r.lesion_dice, r.lesion_hd95, r.n_tp, r.n_fp, r.n_fn)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # legacy (whole-region) values: Dice and DeepMind HD95
    sd = deepmind.compute_surface_distances(ref, pred, spacing)
    np.testing.assert_allclose(r.legacy_hd95, deepmind.compute_robust_hausdorff(sd, 95), rtol=1e-6)
    legacy_dice = deepmind.compute_dice_coefficient(ref, pred)
    np.testing.assert_allclose(r.legacy_dice, legacy_dice, rtol=1e-12)


def test_multi_lesion_cases_hit_the_edge_cases():
    # the random cases above exercise merging, misses, false positives and small lesions
    seen = {"fp": 0, "fn": 0, "small": 0, "multi": 0}
    for seed in range(5):
        ref, pred = _multi_lesion_case(seed)
        for params in (GLI, MET):
            r = brats_lesion_wise(ref, pred, spacing=(1.0, 1.0, 1.0), parameters=params)
            seen["fp"] += r.n_fp
            seen["fn"] += r.n_fn
            seen["small"] += sum(not les.counted for les in r.lesions)
            seen["multi"] += sum(len(les.matched) > 1 for les in r.lesions)
    assert all(v > 0 for v in seen.values()), seen


def test_brats_parameters_table():
    table = BRATS2023_LESION_PARAMETERS.items()
    assert {k: (v.dilation_iterations, v.volume_threshold) for k, v in table} == {
        "BraTS-GLI": (3, 50.0),
        "BraTS-SSA": (3, 50.0),
        "BraTS-MEN": (1, 50.0),
        "BraTS-PED": (3, 50.0),
        "BraTS-MET": (1, 2.0),
    }
    assert all(v.hd95_penalty == 374.0 for v in BRATS2023_LESION_PARAMETERS.values())


# --------------------------------------------------------------------------- detection and PQ
def test_detection_at_iou_threshold():
    ref = np.zeros((1, 10, 10), dtype=bool)
    ref[0, 0:4, 0:4] = True  # 16 voxels
    ref[0, 6:9, 6:9] = True  # 9 voxels
    pred = np.zeros_like(ref)
    pred[0, 0:4, 0:3] = True  # IoU 12/16 = 0.75 with the first
    pred[0, 7:9, 7:9] = True  # IoU 4/9 = 0.44 with the second
    pred[0, 9, 0] = True  # false positive
    d5 = lesion_detection(ref, pred, iou_threshold=0.5)
    assert (d5.tp, d5.fp, d5.fn) == (1, 2, 1)
    assert d5.matches == ((1, 1, 0.75),)
    assert d5.precision == pytest.approx(1 / 3) and d5.recall == 0.5
    assert d5.f1 == pytest.approx(1 / (1 + 1.5))
    d4 = lesion_detection(ref, pred, iou_threshold=0.4)
    assert (d4.tp, d4.fp, d4.fn) == (2, 1, 0)
    e = np.zeros_like(ref)
    de = lesion_detection(e, e)
    assert (de.precision, de.recall, de.f1) == (1.0, 1.0, 1.0)
    dp = lesion_detection(e, pred)
    assert (dp.precision, dp.recall, dp.f1) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        lesion_detection(ref, pred, iou_threshold=0.0)


def test_detection_low_threshold_one_to_one():
    # one prediction overlapping two references with IoU < 0.5 each: matched once only
    ref = np.zeros((1, 3, 9), dtype=bool)
    ref[0, :, 0:3] = True
    ref[0, :, 6:9] = True
    pred = np.zeros_like(ref)
    pred[0, :, 1:8] = True
    d = lesion_detection(ref, pred, iou_threshold=0.2)
    assert (d.tp, d.fp, d.fn) == (1, 0, 1)


def test_detection_with_instance_maps():
    ref = np.zeros((1, 4, 8), dtype=np.uint16)
    ref[0, :, 0:4] = 3
    ref[0, :, 4:8] = 7  # touching instances: one component, two instances
    pred = ref.copy()
    assert lesion_detection(ref, pred, instances=True).tp == 2
    assert lesion_detection(ref, pred).tp == 1


def test_panoptic_quality():
    ref = np.zeros((1, 10, 10), dtype=bool)
    ref[0, 0:4, 0:4] = True
    ref[0, 6:9, 6:9] = True
    pred = np.zeros_like(ref)
    pred[0, 0:4, 0:3] = True  # IoU 0.75
    pred[0, 9, 0] = True  # FP
    q = panoptic_quality(ref, pred)
    assert (q.tp, q.fp, q.fn) == (1, 1, 1)
    assert q.sq == 0.75
    assert q.rq == pytest.approx(1 / (1 + 0.5 + 0.5))
    assert q.pq == pytest.approx(q.sq * q.rq)
    # IoU exactly 0.5 does not match (strict threshold)
    half = np.zeros_like(ref)
    half[0, 0:4, 0:2] = True
    assert panoptic_quality(ref, half).tp == 0
    e = np.zeros_like(ref)
    assert panoptic_quality(e, e) == panoptic_quality(e, e)
    assert (panoptic_quality(e, e).pq, panoptic_quality(e, e).sq) == (1.0, 1.0)
    assert panoptic_quality(e, pred).pq == 0.0
    with pytest.raises(ValueError, match="iou_threshold"):
        panoptic_quality(ref, pred, iou_threshold=0.3)
