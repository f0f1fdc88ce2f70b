"""Evaluation: pair cases, apply a challenge preset, aggregate, rank, and write reports.

``medlens evaluate ...`` is a thin layer over this package. Results are tidy
tables (``metrics.csv`` with columns ``case,region,metric,value``), a
``summary.json`` per region and metric, and a self-contained ``report.html``.
"""

from medlens.evaluation._api import (
    evaluate_classification,
    evaluate_images,
    evaluate_registration,
    evaluate_segmentation,
    rank_results,
)
from medlens.evaluation._image_eval import IMAGE_PRESETS, ImageEvaluator, read_array
from medlens.evaluation._pairing import (
    CasePair,
    Pairing,
    PairingError,
    case_id,
    grid_mismatch,
    list_cases,
    pair_cases,
    safe_name,
)
from medlens.evaluation._ranking import (
    MethodRank,
    Ranking,
    RankingError,
    WilcoxonResult,
    pairwise_wilcoxon,
    rank_methods,
)
from medlens.evaluation._runner import (
    CaseResult,
    CaseTask,
    EvaluationResult,
    Evaluator,
    finish,
    run_cases,
)
from medlens.evaluation._segmentation_eval import (
    SEGMENTATION_PRESETS,
    PresetError,
    SegmentationEvaluator,
    SegmentationSpec,
    load_labels_spec,
    score_label_maps,
    segmentation_preset,
)
from medlens.evaluation._table import (
    METRICS_COLUMNS,
    MetricRow,
    MetricSummary,
    ResultsError,
    atomic_write_text,
    bootstrap_mean_ci,
    higher_is_better,
    json_safe,
    read_metrics_csv,
    summarize,
    write_json,
    write_metrics_csv,
)

__all__ = [
    "IMAGE_PRESETS",
    "METRICS_COLUMNS",
    "SEGMENTATION_PRESETS",
    "CasePair",
    "CaseResult",
    "CaseTask",
    "EvaluationResult",
    "Evaluator",
    "ImageEvaluator",
    "MethodRank",
    "MetricRow",
    "MetricSummary",
    "Pairing",
    "PairingError",
    "PresetError",
    "Ranking",
    "RankingError",
    "ResultsError",
    "SegmentationEvaluator",
    "SegmentationSpec",
    "WilcoxonResult",
    "atomic_write_text",
    "bootstrap_mean_ci",
    "case_id",
    "evaluate_classification",
    "evaluate_images",
    "evaluate_registration",
    "evaluate_segmentation",
    "finish",
    "grid_mismatch",
    "higher_is_better",
    "json_safe",
    "list_cases",
    "load_labels_spec",
    "pair_cases",
    "pairwise_wilcoxon",
    "rank_methods",
    "rank_results",
    "read_array",
    "read_metrics_csv",
    "run_cases",
    "safe_name",
    "score_label_maps",
    "segmentation_preset",
    "summarize",
    "write_json",
    "write_metrics_csv",
]
