"""Connected-component post-processing decided from cross-validation results.

nnU-Net's rule: for each foreground label, keep only its largest connected
component if that raises the mean Dice of that label over the cross-validation
cases (and does not lower the mean foreground Dice); otherwise leave it alone.
The same test then decides, per label, whether filling the label's enclosed
holes (after the component rule) raises its mean Dice; solid organs and brain
masks usually say yes, rings and shells say no.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medlens.segmentation._plan import Plans

__all__ = ["decide_postprocessing", "fill_holes", "largest_component_rules"]


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


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask (background not connected to the border).

    Examples
    --------
    >>> m = np.ones((5, 5), bool); m[2, 2] = False
    >>> bool(fill_holes(m)[2, 2])
    True
    """
    from scipy import ndimage

    if not mask.any():
        return mask
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


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
        ``{"keep_largest_component": {name: bool}, "fill_holes": {name: bool},
        "dice_before": {...}, "dice_after": {...}, "dice_after_fill": {...}}``;
        a rule is true only when it raises the label's mean Dice.

    Examples
    --------
    >>> ref = np.zeros((8, 8), np.uint8); ref[1:4, 1:4] = 1
    >>> pred = ref.copy(); pred[6, 6] = 1          # a stray false positive
    >>> pred[2, 2] = 0                             # and a hole
    >>> rules = largest_component_rules([(ref, pred)], {"background": 0, "a": 1})
    >>> rules["keep_largest_component"], rules["fill_holes"]
    ({'a': True}, {'a': True})
    """
    keep: dict[str, bool] = {}
    fill: dict[str, bool] = {}
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    after_fill: dict[str, float] = {}
    for name, v in labels.items():
        if v == 0:
            continue
        vals = v if isinstance(v, tuple) else (v,)
        d0, d1, d2 = [], [], []
        kept = []
        for ref, pred in pairs:
            r = np.isin(ref, vals)
            p = np.isin(pred, vals)
            d0.append(_dice(r, p))
            lcc = _keep_largest(p)
            d1.append(_dice(r, lcc))
            kept.append((r, p, lcc))
        before[name] = float(np.mean(d0)) if d0 else float("nan")
        after[name] = float(np.mean(d1)) if d1 else float("nan")
        keep[name] = bool(d1) and after[name] > before[name]
        base = after[name] if keep[name] else before[name]
        for r, p, lcc in kept:
            d2.append(_dice(r, fill_holes(lcc if keep[name] else p)))
        after_fill[name] = float(np.mean(d2)) if d2 else float("nan")
        fill[name] = bool(d2) and after_fill[name] > base
    return {
        "keep_largest_component": keep,
        "fill_holes": fill,
        "dice_before": before,
        "dice_after": after,
        "dice_after_fill": after_fill,
    }


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
