"""Overlap and volume metrics: hand-worked values, empty masks, MedPy equality."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlens.errors import GeometryError
from medlens.metrics import (
    ConfusionCounts,
    absolute_volume_difference,
    confusion_counts,
    dice,
    jaccard,
    overlap_from_counts,
    precision,
    recall,
    relative_volume_difference,
    specificity,
    volume,
)

REF = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
PRED = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=bool)
# tp = 2, fp = 2, fn = 1, tn = 7


def test_hand_worked_counts_and_ratios():
    assert confusion_counts(REF, PRED) == ConfusionCounts(tp=2, fp=2, fn=1, tn=7)
    assert dice(REF, PRED) == pytest.approx(4 / 7)
    assert jaccard(REF, PRED) == pytest.approx(2 / 5)
    assert precision(REF, PRED) == pytest.approx(2 / 4)
    assert recall(REF, PRED) == pytest.approx(2 / 3)
    assert specificity(REF, PRED) == pytest.approx(7 / 9)


def test_counts_from_crop_equal_full_volume(rng):
    ref = np.zeros((40, 30, 20), dtype=bool)
    pred = np.zeros_like(ref)
    ref[10:20, 5:15, 3:9] = rng.random((10, 10, 6)) > 0.3
    pred[12:25, 8:18, 2:8] = rng.random((13, 10, 6)) > 0.3
    tp = int(np.sum(ref & pred))
    fp = int(np.sum(~ref & pred))
    fn = int(np.sum(ref & ~pred))
    tn = int(np.sum(~ref & ~pred))
    assert confusion_counts(ref, pred) == ConfusionCounts(tp, fp, fn, tn)
    # non-boolean inputs: non-zero is foreground
    as_numbers = confusion_counts(ref.astype(np.uint16) * 7, pred.astype(np.float64))
    assert as_numbers == ConfusionCounts(tp, fp, fn, tn)


@pytest.mark.parametrize("seed", range(4))
def test_equal_medpy(seed, medpy_binary):
    rng = np.random.default_rng(seed)
    ref = rng.random((12, 13, 9)) > 0.6
    pred = rng.random((12, 13, 9)) > 0.5
    mb = medpy_binary
    assert dice(ref, pred) == pytest.approx(mb.dc(pred, ref), rel=1e-12)
    assert jaccard(ref, pred) == pytest.approx(mb.jc(pred, ref), rel=1e-12)
    assert precision(ref, pred) == pytest.approx(mb.precision(pred, ref), rel=1e-12)
    assert recall(ref, pred) == pytest.approx(mb.recall(pred, ref), rel=1e-12)
    assert specificity(ref, pred) == pytest.approx(mb.specificity(pred, ref), rel=1e-12)
    assert relative_volume_difference(ref, pred) == pytest.approx(mb.ravd(pred, ref), rel=1e-12)


def test_empty_masks():
    e = np.zeros((3, 4), dtype=bool)
    # both empty
    for fn in (dice, jaccard, precision, recall):
        assert fn(e, e) == 1.0
        assert fn(e, e, empty_value=0.0) == 0.0
    assert specificity(e, e) == 1.0
    assert relative_volume_difference(e, e) == 0.0
    assert absolute_volume_difference(e, e, spacing=(1.0, 1.0)) == 0.0
    # only the reference empty
    for fn in (dice, jaccard, precision, recall):
        assert fn(e, PRED) == 0.0
    assert specificity(e, PRED) == pytest.approx(8 / 12)
    assert math.isinf(relative_volume_difference(e, PRED))
    # only the prediction empty
    for fn in (dice, jaccard, precision, recall):
        assert fn(REF, e) == 0.0
    assert specificity(REF, e) == 1.0
    assert relative_volume_difference(REF, e) == -1.0
    # reference covering every voxel: specificity undefined -> empty_value
    full = np.ones((2, 2), dtype=bool)
    assert specificity(full, full) == 1.0
    assert specificity(full, full, empty_value=0.5) == 0.5


def test_volumes_in_ml():
    m = np.zeros((10, 10, 10), dtype=np.uint8)
    m[:5] = 2
    assert volume(m, spacing=(1.0, 2.0, 3.0)) == pytest.approx(500 * 6 / 1000)
    assert volume(np.zeros((3, 3, 3)), spacing=(1, 1, 1)) == 0.0
    other = np.zeros_like(m)
    other[:2] = 1
    avd = absolute_volume_difference(m, other, spacing=(1.0, 2.0, 3.0))
    assert avd == pytest.approx(300 * 6 / 1000)
    assert absolute_volume_difference(other, m, spacing=(1.0, 2.0, 3.0)) == pytest.approx(1.8)
    assert relative_volume_difference(m, other) == pytest.approx(-0.6)


def test_overlap_from_counts_and_errors():
    c = ConfusionCounts(tp=3, fp=1, fn=2, tn=10)
    assert overlap_from_counts(c, "dice") == pytest.approx(6 / 9)
    assert c.reference_count == 5 and c.prediction_count == 4
    with pytest.raises(ValueError, match="unknown overlap metric"):
        overlap_from_counts(c, "f2")
    with pytest.raises(GeometryError, match="same shape"):
        dice(np.zeros(3), np.zeros(4))
    with pytest.raises(GeometryError):
        volume(np.zeros((2, 2)), spacing=(1.0,))
    with pytest.raises(TypeError, match="dtype"):
        dice(np.array(["a"]), np.array(["b"]))


def test_memory_layouts_give_the_same_counts(rng):
    from medlens.metrics._seg_utils import nonzero_bbox

    ref = np.zeros((20, 16, 12), dtype=bool)
    ref[3:9, 4:12, 2:5] = rng.random((6, 8, 3)) > 0.2
    pred = np.roll(ref, 2, axis=1)
    want = confusion_counts(ref, pred)
    box = nonzero_bbox(ref)
    fortran = np.asfortranarray(ref)
    assert nonzero_bbox(fortran) == box
    assert confusion_counts(fortran, np.asfortranarray(pred)) == want
    big = np.zeros((20, 32, 12), dtype=bool)
    big[:, ::2] = ref
    strided = big[:, ::2]  # neither C- nor F-contiguous
    assert nonzero_bbox(strided) == box
    assert confusion_counts(strided, pred) == want
    assert nonzero_bbox(np.zeros((3, 4, 5), order="F")) is None
