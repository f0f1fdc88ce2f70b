"""Self-configuring segmentation on a CPU.

Fingerprint -> plan -> preprocess -> train -> predict -> ensemble -> post-process
-> quantify.

The NumPy parts (dataset layouts, fingerprint, planning, preprocessing, mask
statistics) import eagerly; everything that needs torch (networks, training,
prediction, calibration) is loaded on first attribute access, so
``import medlens.segmentation`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from medlens.segmentation._config import NetworkConfig
from medlens.segmentation._dataset import (
    Case,
    DatasetError,
    SegmentationDataset,
    read_case,
    read_dataset,
)
from medlens.segmentation._fingerprint import (
    CaseFingerprint,
    DatasetFingerprint,
    IntensityStats,
    dataset_fingerprint,
    foreground_oversampling,
    minimum_iterations,
    nonzero_bbox,
)
from medlens.segmentation._plan import (
    Calibration,
    Configuration,
    PlanError,
    Plans,
    fullres_target_spacing,
    plan_experiment,
    pool_and_conv_props,
)
from medlens.segmentation._preprocess import (
    normalize,
    preprocess_case,
    preprocess_dataset,
    resample_to_spacing,
)
from medlens.segmentation._stats import StructureStats, mask_statistics

_LAZY = {
    "build_network": "_networks",
    "UNet": "_networks",
    "MedNeXt": "_networks",
    "inference_network": "_networks",
    "is_channels_last": "_networks",
    "channels_last_is_faster": "_networks",
    "DiceCELoss": "_loss",
    "DeepSupervisionLoss": "_loss",
    "AugmentConfig": "_augment",
    "TrainConfig": "_train",
    "TrainResult": "_train",
    "TrainingError": "_train",
    "kfold_split": "_train",
    "train": "_train",
    "sliding_window_inference": "_sliding",
    "gaussian_importance_map": "_sliding",
    "Predictor": "_predict",
    "PredictionError": "_predict",
    "load_predictor": "_predict",
    "calibrate": "_calibrate",
    "export_onnx": "_onnx",
    "OnnxNetwork": "_onnx",
}

__all__ = [
    "AugmentConfig",
    "Calibration",
    "Case",
    "CaseFingerprint",
    "Configuration",
    "DatasetError",
    "DatasetFingerprint",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "IntensityStats",
    "MedNeXt",
    "NetworkConfig",
    "OnnxNetwork",
    "PlanError",
    "Plans",
    "PredictionError",
    "Predictor",
    "SegmentationDataset",
    "StructureStats",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UNet",
    "build_network",
    "calibrate",
    "channels_last_is_faster",
    "dataset_fingerprint",
    "export_onnx",
    "foreground_oversampling",
    "fullres_target_spacing",
    "gaussian_importance_map",
    "inference_network",
    "is_channels_last",
    "kfold_split",
    "load_predictor",
    "mask_statistics",
    "minimum_iterations",
    "nonzero_bbox",
    "normalize",
    "plan_experiment",
    "pool_and_conv_props",
    "preprocess_case",
    "preprocess_dataset",
    "read_case",
    "read_dataset",
    "resample_to_spacing",
    "sliding_window_inference",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(f"medlens.segmentation.{_LAZY[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module 'medlens.segmentation' has no attribute {name!r}")
