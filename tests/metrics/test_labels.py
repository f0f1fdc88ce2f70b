"""Label maps and regions: KiTS21 / BraTS region definitions and tidy metric rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlens.errors import GeometryError
from medlens.metrics import (
    BRATS2023_LESION_PARAMETERS,
    BRATS_REGIONS,
    KITS21_REGIONS,
    MetricRow,
    Region,
    brats_lesion_wise,
    dice,
    label_regions,
    lesion_f1,
    segmentation_metrics,
    surface_metrics,
)


def _label_case(rng, shapes, shape=(40, 36, 24), labels=(1, 2, 3)):
    """A nested label map (kidney-like 1 containing 2 and 3) and a perturbed prediction."""
    sp = (0.9, 0.9, 2.0)
    ref = np.zeros(shape, dtype=np.uint8)
    outer = shapes.ellipsoid(shape, sp, (18.0, 16.0, 24.0), (12.0, 10.0, 16.0))
    inner = shapes.ellipsoid(shape, sp, (20.0, 17.0, 26.0), (5.0, 5.0, 7.0))
    cyst = shapes.ellipsoid(shape, sp, (13.0, 13.0, 18.0), (3.0, 3.0, 5.0))
    ref[outer] = labels[0]
    ref[inner] = labels[1]
    ref[cyst & outer] = labels[2]
    pred = np.roll(ref, 1, axis=0)
    noise = rng.random(shape) > 0.97
    pred[noise & (pred > 0)] = labels[0]
    return ref, pred, sp


def test_region_dataclass():
    r = Region("TC", [1, 3], 2)  # type: ignore[arg-type]
    assert r.labels == (1, 3) and r.nsd_tolerance == 2.0
    with pytest.raises(ValueError, match="background"):
        Region("bad", (0, 1))
    with pytest.raises(ValueError, match="no labels"):
        Region("bad", ())
    with pytest.raises(ValueError, match="nsd_tolerance"):
        Region("bad", (1,), -1.0)
    with pytest.raises(AttributeError):
        r.name = "x"  # type: ignore[misc]
    assert label_regions([2, 5]) == (Region("label_2", (2,)), Region("label_5", (5,)))


def test_official_region_tables():
    assert [(r.name, r.labels) for r in KITS21_REGIONS] == [
        ("kidney_and_mass", (1, 2, 3)),
        ("mass", (2, 3)),
        ("tumor", (2,)),
    ]
    # kits21/configuration/labels.py HEC_SD_TOLERANCES_MM
    assert [r.nsd_tolerance for r in KITS21_REGIONS] == [
        1.0330772532390826,
        1.1328796488598762,
        1.1498198361434828,
    ]
    brats = [(r.name, r.labels) for r in BRATS_REGIONS]
    assert brats == [("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))]


def _kits21_official(ref, pred, sp, dm, medpy_binary):
    """kits21/evaluation/metrics.py compute_metrics_for_label, for each HEC."""
    out = []
    for region in KITS21_REGIONS:
        gt = np.isin(ref, region.labels)
        pr = np.isin(pred, region.labels)
        ge, pe = not gt.any(), not pr.any()
        d = 1.0 if ge and pe else medpy_binary.dc(pr, gt)
        if ge and pe:
            sd = 1.0
        elif ge or pe:
            sd = 0.0
        else:
            dist = dm.compute_surface_distances(gt, pr, sp)
            sd = dm.compute_surface_dice_at_tolerance(dist, region.nsd_tolerance)
        out += [(region.name, "dice", d), (region.name, f"nsd@{region.nsd_tolerance!r}", sd)]
    return out


@pytest.mark.parametrize("variant", ["normal", "no_tumour_in_prediction", "no_mass_anywhere"])
def test_kits21_equals_official(variant, rng, shapes, deepmind, medpy_binary):
    ref, pred, sp = _label_case(rng, shapes)
    if variant == "no_tumour_in_prediction":
        pred[pred == 2] = 1
    elif variant == "no_mass_anywhere":
        ref[ref > 1] = 1
        pred[pred > 1] = 1
    rows = segmentation_metrics(
        ref, pred, spacing=sp, regions=KITS21_REGIONS, metrics=["dice", "nsd"], method="surfel"
    )
    want = _kits21_official(ref, pred, sp, deepmind, medpy_binary)
    assert [(r.region, r.metric) for r in rows] == [(w[0], w[1]) for w in want]
    np.testing.assert_allclose([r.value for r in rows], [w[2] for w in want], rtol=1e-6)


def test_rows_equal_direct_functions(rng, shapes):
    ref, pred, sp = _label_case(rng, shapes)
    names = ["dice", "jaccard", "precision", "recall", "specificity", "hd", "hd95", "hd99",
             "assd", "masd", "nsd@2.0", "volume_reference", "volume_prediction",
             "absolute_volume_difference", "relative_volume_difference", "lesion_f1",
             "lesion_count_difference", "detection_f1@0.5", "pq", "sq", "rq"]  # fmt: skip
    for method, pooling in (("surfel", "max_directed"), ("border", "pooled")):
        kw = {"spacing": sp, "regions": BRATS_REGIONS, "method": method, "pooling": pooling}
        rows = segmentation_metrics(ref, pred, metrics=names, **kw)
        assert len(rows) == len(names) * 3
        by = {(r.region, r.metric): r.value for r in rows}
        for region in BRATS_REGIONS:
            r_m, p_m = np.isin(ref, region.labels), np.isin(pred, region.labels)
            m = surface_metrics(
                r_m, p_m, spacing=sp, method=method, pooling=pooling, tolerances=(2.0,)
            )
            assert by[(region.name, "dice")] == dice(r_m, p_m)
            assert by[(region.name, "hd")] == m.hausdorff
            assert by[(region.name, "hd95")] == m.percentile_hausdorff
            assert by[(region.name, "assd")] == m.assd
            assert by[(region.name, "masd")] == m.masd
            assert by[(region.name, "nsd@2.0")] == m.nsd[0]
            assert by[(region.name, "lesion_f1")] == lesion_f1(r_m, p_m)
            vr = np.count_nonzero(r_m) * math.prod(sp) / 1000
            assert by[(region.name, "volume_reference")] == pytest.approx(vr)


def test_brats_rows_equal_lesion_wise(rng, shapes):
    ref, pred, sp = _label_case(rng, shapes)
    params = BRATS2023_LESION_PARAMETERS["BraTS-GLI"]
    rows = segmentation_metrics(
        ref,
        pred,
        spacing=sp,
        regions=BRATS_REGIONS,
        metrics=["lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fp", "lesion_fn", "hd95"],
        empty_penalty=374.0,
        brats_parameters=params,
    )
    by = {(r.region, r.metric): r.value for r in rows}
    for region in BRATS_REGIONS:
        r_m, p_m = np.isin(ref, region.labels), np.isin(pred, region.labels)
        want = brats_lesion_wise(r_m, p_m, spacing=sp, parameters=params)
        assert by[(region.name, "lesion_dice")] == want.lesion_dice
        assert by[(region.name, "lesion_hd95")] == want.lesion_hd95
        assert by[(region.name, "lesion_tp")] == want.n_tp
        assert by[(region.name, "lesion_fp")] == want.n_fp
        assert by[(region.name, "lesion_fn")] == want.n_fn
        assert by[(region.name, "hd95")] == pytest.approx(want.legacy_hd95, rel=1e-12)


def test_brats_parameters_per_region(rng, shapes):
    ref, pred, sp = _label_case(rng, shapes)
    gli, met = BRATS2023_LESION_PARAMETERS["BraTS-GLI"], BRATS2023_LESION_PARAMETERS["BraTS-MET"]
    per = {"WT": gli, "TC": met, "ET": gli}
    rows = segmentation_metrics(
        ref, pred, spacing=sp, regions=BRATS_REGIONS, metrics=["lesion_dice"], brats_parameters=per
    )
    for row, region in zip(rows, BRATS_REGIONS, strict=True):
        r_m, p_m = np.isin(ref, region.labels), np.isin(pred, region.labels)
        want = brats_lesion_wise(r_m, p_m, spacing=sp, parameters=per[region.name])
        assert row.value == want.lesion_dice
    with pytest.raises(ValueError, match="no entry"):
        segmentation_metrics(
            ref, pred, spacing=sp, regions=BRATS_REGIONS, metrics=["lesion_dice"],
            brats_parameters={"WT": gli},
        )  # fmt: skip


def test_empty_regions_and_penalized_flag():
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = ref.copy()
    rows = segmentation_metrics(
        ref,
        pred,
        spacing=(1.0, 1.0, 1.0),
        regions=BRATS_REGIONS,
        metrics=["dice", "hd95", "nsd@1.0", "assd"],
        empty_penalty=374.0,
    )
    by = {(r.region, r.metric): r for r in rows}
    # WT and TC present in both; ET empty in both
    assert by[("TC", "dice")].value == 1.0 and by[("TC", "hd95")].value == 0.0
    assert by[("ET", "dice")] == MetricRow("ET", "dice", 1.0, False)
    assert by[("ET", "hd95")] == MetricRow("ET", "hd95", 0.0, False)
    assert by[("ET", "nsd@1.0")].value == 1.0
    # only the prediction has ET: penalised distance rows, NSD 0, Dice 0
    pred[3, 3, 3] = 3
    names = ["dice", "hd95", "nsd@1.0", "assd"]
    rows = segmentation_metrics(ref, pred, spacing=(1, 1, 1), regions=BRATS_REGIONS, metrics=names)
    by = {(r.region, r.metric): r for r in rows}
    assert by[("ET", "hd95")].penalized and math.isinf(by[("ET", "hd95")].value)
    assert by[("ET", "assd")].penalized
    assert not by[("ET", "nsd@1.0")].penalized and by[("ET", "nsd@1.0")].value == 0.0
    assert by[("ET", "dice")].value == 0.0
    assert not by[("WT", "hd95")].penalized
    # both label maps completely empty
    e = np.zeros((6, 6, 6), dtype=np.uint8)
    names = ["dice", "hd", "lesion_f1"]
    rows = segmentation_metrics(e, e, spacing=(1, 1, 1), regions=BRATS_REGIONS, metrics=names)
    assert all(r.value == (0.0 if r.metric == "hd" else 1.0) for r in rows)


def test_2d_label_maps():
    ref = np.zeros((12, 12), dtype=np.int32)
    ref[2:8, 2:8] = 1
    ref[4:6, 4:6] = 2
    pred = np.roll(ref, 1, axis=1)
    regions = label_regions([1, 2])
    rows = segmentation_metrics(
        ref, pred, spacing=(0.5, 2.0), regions=regions, metrics=["dice", "hd"], method="border"
    )
    by = {(r.region, r.metric): r.value for r in rows}
    assert by[("label_2", "hd")] == 2.0
    assert by[("label_2", "dice")] == 0.5


def test_errors():
    a = np.zeros((5, 5, 5), dtype=np.uint8)
    kw = {"spacing": (1, 1, 1), "regions": BRATS_REGIONS}
    with pytest.raises(ValueError, match="unknown metric"):
        segmentation_metrics(a, a, metrics=["dise"], **kw)
    with pytest.raises(ValueError, match="nsd_tolerance"):
        segmentation_metrics(a, a, metrics=["nsd"], **kw)
    with pytest.raises(ValueError, match="brats_parameters"):
        segmentation_metrics(a, a, metrics=["lesion_dice"], **kw)
    with pytest.raises(ValueError, match="method"):
        segmentation_metrics(a, a, metrics=["hd"], method="mesh", **kw)
    with pytest.raises(ValueError, match="pooling"):
        segmentation_metrics(a, a, metrics=["hd95"], pooling="mean", **kw)
    with pytest.raises(GeometryError):
        segmentation_metrics(a, a[:4], metrics=["dice"], **kw)
