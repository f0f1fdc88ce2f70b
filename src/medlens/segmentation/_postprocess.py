"""Connected-component post-processing decided from cross-validation results.

nnU-Net's rule: for each foreground label, keep only its largest connected
component if that raises the mean Dice of that label over the cross-validation
cases (and does not lower the mean foreground Dice); otherwise leave it alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medlens.segmentation._plan import Plans

__all__ = ["decide_postprocessing", "largest_component_rules"]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def _keep_largest(mask: np.ndarray) -> np.ndarray:
    import cc3d

    if not mask.any():
        return mask
    return np.asarray(
        cc3d.largest_k(mask.astype(np.uint8), k=1, connectivity=26 if mask.ndim == 3 else 8) > 0
    )


def largest_component_rules(
    pairs: list[tuple[np.ndarray, np.ndarray]], labels: dict[str, Any]
) -> dict[str, Any]:
    """Decide, per label, whether keeping the largest component helps.

    Parameters
    ----------
    pairs : list of (reference, prediction)
        Integer label maps of the cross-validation cases.
    labels : dict
        Label name -> value (or tuple of values for a region).

    Returns
    -------
    dict
        ``{"keep_largest_component": {name: bool}, "dice_before": {...},
        "dice_after": {...}}``.

    Examples
    --------
    >>> ref = np.zeros((8, 8), np.uint8); ref[1:4, 1:4] = 1
    >>> pred = ref.copy(); pred[6, 6] = 1          # a stray false positive
    >>> largest_component_rules([(ref, pred)], {"background": 0, "a": 1})["keep_largest_component"]
    {'a': True}
    """
    keep: dict[str, bool] = {}
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    for name, v in labels.items():
        if v == 0:
            continue
        vals = v if isinstance(v, tuple) else (v,)
        d0, d1 = [], []
        for ref, pred in pairs:
            r = np.isin(ref, vals)
            p = np.isin(pred, vals)
            d0.append(_dice(r, p))
            d1.append(_dice(r, _keep_largest(p)))
        before[name] = float(np.mean(d0)) if d0 else float("nan")
        after[name] = float(np.mean(d1)) if d1 else float("nan")
        keep[name] = bool(d1) and after[name] > before[name]
    return {"keep_largest_component": keep, "dice_before": before, "dice_after": after}


def decide_postprocessing(
    reference_dir: str | os.PathLike[str], prediction_dir: str | os.PathLike[str], plans: Plans
) -> dict[str, Any]:
    """:func:`largest_component_rules` on the label maps of two folders, paired by name."""
    from medlens.io import read_image

    refs = {p.name: p for p in Path(reference_dir).iterdir() if p.is_file()}
    pairs = []
    for p in sorted(Path(prediction_dir).iterdir()):
        if p.name in refs:
            pairs.append(
                (np.asarray(read_image(refs[p.name]).array), np.asarray(read_image(p).array))
            )
    rules = largest_component_rules(pairs, dict(plans.labels))
    rules["n_cases"] = len(pairs)
    return rules
