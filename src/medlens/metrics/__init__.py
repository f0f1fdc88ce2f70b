"""Challenge-grade metrics: arrays in, numbers out (pure NumPy/SciPy, no torch, no file I/O).

Comparison functions take ``(reference, prediction)``; options are keyword-only;
distance metrics require ``spacing=`` in mm. Heavy libraries (scikit-learn) are
imported inside the functions that need them.
"""

from medlens.metrics._classification import (
    ConfidenceInterval,
    Disparity,
    GroupResult,
    OperatingPoint,
    PatientScores,
    auprc,
    auroc,
    balanced_accuracy,
    bootstrap_ci,
    brier_score,
    calibration_bins,
    disparity_summary,
    expected_calibration_error,
    f1_score,
    group_results,
    operating_point,
    operating_point_at_sensitivity,
    patient_scores,
)
from medlens.metrics._correlation import (
    kendall_correlation,
    pearson_correlation,
    spearman_correlation,
)
from medlens.metrics._image import (
    CMRxReconImageMetrics,
    FastMRIImageMetrics,
    SynthRAD2023ImageMetrics,
    cmrxrecon_crop,
    cmrxrecon_image_metrics,
    fastmri_center_crop,
    fastmri_image_metrics,
    mean_absolute_error,
    mean_squared_error,
    normalized_mean_squared_error,
    peak_signal_noise_ratio,
    root_mean_squared_error,
    structural_similarity,
    structural_similarity_map,
    synthrad2023_image_metrics,
)
from medlens.metrics._registration import (
    JacobianStatistics,
    VolumeChange,
    jacobian_determinant,
    jacobian_statistics,
    target_registration_error,
    volume_change,
)

__all__ = [  # noqa: RUF022 (grouped by module, sorted within each group)
    # classification (_classification)
    "ConfidenceInterval",
    "Disparity",
    "GroupResult",
    "OperatingPoint",
    "PatientScores",
    "auprc",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "brier_score",
    "calibration_bins",
    "disparity_summary",
    "expected_calibration_error",
    "f1_score",
    "group_results",
    "operating_point",
    "operating_point_at_sensitivity",
    "patient_scores",
    # image similarity (_image)
    "CMRxReconImageMetrics",
    "FastMRIImageMetrics",
    "SynthRAD2023ImageMetrics",
    "cmrxrecon_crop",
    "cmrxrecon_image_metrics",
    "fastmri_center_crop",
    "fastmri_image_metrics",
    "mean_absolute_error",
    "mean_squared_error",
    "normalized_mean_squared_error",
    "peak_signal_noise_ratio",
    "root_mean_squared_error",
    "structural_similarity",
    "structural_similarity_map",
    "synthrad2023_image_metrics",
    # correlation (_correlation)
    "kendall_correlation",
    "pearson_correlation",
    "spearman_correlation",
    # registration (_registration)
    "JacobianStatistics",
    "VolumeChange",
    "jacobian_determinant",
    "jacobian_statistics",
    "target_registration_error",
    "volume_change",
]
