"""Classification metrics against scikit-learn and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from medlens import metrics as mm


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.random(300) < 0.35
    s = 1 / (1 + np.exp(-(1.5 * y - 0.7 + rng.normal(size=300))))
    s = np.round(s, 2)  # create ties
    return y, s


def test_auroc_auprc_match_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    assert mm.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    assert mm.auprc(y, s) == pytest.approx(skm.average_precision_score(y, s), rel=1e-12)
    p, r, _ = skm.precision_recall_curve(y, s)
    assert mm.auprc(y, s, method="trapezoid") == pytest.approx(skm.auc(r, p), rel=1e-12)


def test_auroc_hand_worked() -> None:
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 3 of 4
    assert mm.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie counts one half
    assert mm.auroc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(mm.auroc([1, 1], [0.2, 0.3]))
    assert math.isnan(mm.auprc([0, 0], [0.2, 0.3]))
    with pytest.raises(ValueError, match="0/1"):
        mm.auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        mm.auroc([0, 1], [0.1, np.nan])


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.71])
def test_operating_point_matches_sklearn(
    data: tuple[np.ndarray, np.ndarray], threshold: float
) -> None:
    y, s = data
    pred = s >= threshold
    p = mm.operating_point(y, s, threshold=threshold)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert (p.tp, p.fp, p.tn, p.fn) == (tp, fp, tn, fn)
    assert p.sensitivity == pytest.approx(skm.recall_score(y, pred))
    assert p.specificity == pytest.approx(skm.recall_score(~y, ~pred))
    assert p.ppv == pytest.approx(skm.precision_score(y, pred))
    assert p.f1 == pytest.approx(skm.f1_score(y, pred))
    assert p.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert mm.f1_score(y, pred) == pytest.approx(skm.f1_score(y, pred))
    assert mm.balanced_accuracy(y, pred) == pytest.approx(skm.balanced_accuracy_score(y, pred))


def test_operating_point_at_sensitivity(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    for target in (0.5, 0.8, 0.9, 0.95, 1.0):
        p = mm.operating_point_at_sensitivity(y, s, target_sensitivity=target)
        assert p.sensitivity >= target
        # the most specific such threshold: any higher candidate misses the target
        higher = np.unique(s[s > p.threshold])
        if higher.size:
            assert mm.operating_point(y, s, threshold=higher[0]).sensitivity < target
        # agrees with the ROC curve: best specificity among points meeting the target
        fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
        assert p.specificity == pytest.approx(1 - fpr[tpr >= target - 1e-12].min())
    with pytest.raises(ValueError, match="positive"):
        mm.operating_point_at_sensitivity([0, 0], [0.1, 0.2], target_sensitivity=0.9)


def test_rates_undefined_are_nan() -> None:
    p = mm.operating_point([0, 0], [0.1, 0.9], threshold=0.5)
    assert math.isnan(p.sensitivity) and p.specificity == 0.5
    assert math.isnan(mm.f1_score([0, 0], [0, 0]))


def test_brier_and_ece(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    assert mm.brier_score(y, s) == pytest.approx(skm.brier_score_loss(y, s), rel=1e-12)
    for strategy in ("uniform", "quantile"):
        obs, pred, counts = mm.calibration_bins(y, s, n_bins=8, strategy=strategy)
        prob_true, prob_pred = calibration_curve(y, s, n_bins=8, strategy=strategy)
        keep = counts > 0
        np.testing.assert_allclose(obs[keep], prob_true, rtol=1e-12)
        np.testing.assert_allclose(pred[keep], prob_pred, rtol=1e-12)
        ece = mm.expected_calibration_error(y, s, n_bins=8, strategy=strategy)
        expected = np.sum(counts[keep] / y.size * np.abs(prob_true - prob_pred))
        assert ece == pytest.approx(expected, rel=1e-12)


def test_ece_hand_worked() -> None:
    # bin [0, .1]: one negative at .05 -> .05; (.1, .2]: one positive at .15 -> .85;
    # (.9, 1]: two positives at .95 -> .05 each. ECE = (.05 + .85 + 2 * .05) / 4
    ece = mm.expected_calibration_error([0, 1, 1, 1], [0.05, 0.15, 0.95, 0.95])
    assert ece == pytest.approx(0.25)
    # edges are right-closed: 0.1 belongs to the first bin
    obs, _, counts = mm.calibration_bins([1, 0], [0.1, 0.1000001])
    assert counts[0] == 1 and counts[1] == 1 and obs[0] == 1.0
    assert mm.expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mm.brier_score([1], [1.5])


def test_bootstrap_seeded_stratified(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    a = mm.bootstrap_ci(y, s, mm.auroc, n_resamples=300, seed=3)
    b = mm.bootstrap_ci(y, s, mm.auroc, n_resamples=300, seed=3)
    c = mm.bootstrap_ci(y, s, mm.auroc, n_resamples=300, seed=4)
    assert a == b and a != c
    assert a.lower < a.estimate < a.upper
    assert a.estimate == pytest.approx(skm.roc_auc_score(y, s))
    assert a.n_undefined == 0

    # stratified resamples keep the class counts exactly
    seen: list[int] = []

    def count_pos(yy: np.ndarray, ss: np.ndarray) -> float:
        seen.append(int(yy.sum()))
        return float(yy.mean())

    mm.bootstrap_ci(y, s, count_pos, n_resamples=20, seed=0)
    assert set(seen) == {int(y.sum())}
    seen.clear()
    mm.bootstrap_ci(y, s, count_pos, n_resamples=20, seed=0, stratified=False)
    assert len(set(seen)) > 1


def test_bootstrap_interval_reproduces_manual_percentiles(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    y, s = data
    rng = np.random.default_rng(11)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    vals = []
    for _ in range(100):
        idx = np.concatenate(
            [pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]]
        )
        vals.append(skm.roc_auc_score(y[idx], s[idx]))
    ci = mm.bootstrap_ci(y, s, mm.auroc, n_resamples=100, seed=11, confidence=0.9)
    lo, hi = np.quantile(vals, [0.05, 0.95])
    assert (ci.lower, ci.upper) == pytest.approx((lo, hi), rel=1e-12)


def test_cluster_bootstrap() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.8, 0.7, 0.3, 0.9])
    patients = ["a", "a", "b", "b", "c", "c"]
    sizes: list[int] = []

    def size(yy: np.ndarray, ss: np.ndarray) -> float:
        sizes.append(yy.size)
        return float(yy.size)

    mm.bootstrap_ci(y, s, size, n_resamples=30, seed=0, clusters=patients)
    assert set(sizes) == {6}  # each patient has two images: always 3 clusters x 2


def test_patient_scores() -> None:
    ids = ["p2", "p1", "p1", "p2", "p3"]
    s = [0.2, 0.4, 0.8, 0.6, 0.1]
    y = [0, 0, 1, 0, 0]
    mean = mm.patient_scores(ids, s, reference=y)
    assert mean.patients == ("p1", "p2", "p3")
    np.testing.assert_allclose(mean.scores, [0.6, 0.4, 0.1])
    assert mean.reference is not None and mean.reference.tolist() == [True, False, False]
    assert mean.n_images.tolist() == [2, 2, 1]
    mx = mm.patient_scores(ids, s, how="max")
    np.testing.assert_allclose(mx.scores, [0.8, 0.6, 0.1])
    assert mx.reference is None


def test_group_results_and_disparity(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    sex = np.where(np.arange(y.size) % 3 == 0, "F", "M")
    res = mm.group_results(y, s, sex, threshold=0.5, n_resamples=50, seed=1)
    assert [r.group for r in res] == ["F", "M"]
    for r in res:
        sel = sex == r.group
        assert r.n == sel.sum() and r.n_positive == y[sel].sum()
        assert r.auroc == pytest.approx(skm.roc_auc_score(y[sel], s[sel]))
        assert r.point.sensitivity == pytest.approx(skm.recall_score(y[sel], s[sel] >= 0.5))
        assert r.auroc_ci is not None and r.auroc_ci.lower <= r.auroc <= r.auroc_ci.upper
    disp = {d.metric: d for d in mm.disparity_summary(res)}
    sens = [r.point.sensitivity for r in res]
    assert disp["sensitivity"].difference == pytest.approx(max(sens) - min(sens))
    assert disp["sensitivity"].ratio == pytest.approx(min(sens) / max(sens))
    assert disp["auroc"].best_group in ("F", "M")
