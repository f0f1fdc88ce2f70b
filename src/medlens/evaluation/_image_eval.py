"""Image-similarity evaluation presets: ``fastmri``, ``synthrad2023``, ``cmrxrecon``."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.errors import MedlensError
from medlens.evaluation._runner import CaseResult, CaseTask

__all__ = ["IMAGE_PRESETS", "ImageEvaluator", "read_array"]

#: Image presets and their metric sets (region name ``image``, or ``body`` inside a mask).
IMAGE_PRESETS: dict[str, tuple[str, ...]] = {
    "fastmri": ("nmse", "psnr", "ssim"),
    "synthrad2023": ("mae", "psnr", "ssim"),
    "cmrxrecon": ("psnr", "ssim", "nmse"),
}

_FASTMRI_KEYS = ("reconstruction", "reconstruction_rss", "reconstruction_esc")


def _h5_array(path: Path, keys: tuple[str, ...] = ()) -> npt.NDArray[Any]:
    import h5py

    with h5py.File(path, "r") as f:
        names = [k for k in keys if k in f] or [k for k in f if isinstance(f[k], h5py.Dataset)]
        if not names:
            raise MedlensError(f"{path.name}: no dataset found (looked for {', '.join(keys)})")
        data = f[names[0]][()]
    if data.dtype.names and {"real", "imag"} <= set(data.dtype.names):
        data = data["real"] + 1j * data["imag"]
    return np.asarray(data)


def read_array(
    path: Path, *, layout: str
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64] | None]:
    """Read an image for image-similarity evaluation, in the layout a convention expects.

    Parameters
    ----------
    path : pathlib.Path
        ``.h5`` (fastMRI: dataset ``reconstruction``, ``reconstruction_rss`` or
        ``reconstruction_esc``, shape ``(slices, rows, cols)``), ``.mat`` v7.3
        (CMRxRecon: MATLAB ``(sx, sy, ...)`` order, stored reversed by HDF5)
        or any format :func:`medlens.io.read_image` reads (array ``(i, j, k)``).
    layout : {"slices_first", "plane_last", "native"}
        ``slices_first``: ``(slices, rows, cols)`` — a NIfTI ``(i, j, k)`` array
        becomes ``(k, i, j)``. ``plane_last``: ``(..., sx, sy)`` with the image
        plane last — NIfTI ``(i, j, k)`` becomes ``(k, i, j)``, MATLAB files
        ``(..., sx, sy)``. ``native``: the reader's array.

    Returns
    -------
    array : numpy.ndarray
        The data.
    affine : numpy.ndarray or None
        The voxel-to-RAS affine when the format has one.
    """
    low = path.name.lower()
    if low.endswith(".h5"):
        return _h5_array(path, _FASTMRI_KEYS), None
    if low.endswith(".mat"):
        arr = _h5_array(path)
        # HDF5 stores MATLAB's column-major (sx, sy, z, t) as (t, z, sy, sx)
        return np.swapaxes(arr, -1, -2), None
    from medlens.io import read_image

    img = read_image(path)
    arr = np.asarray(img.array)
    if layout in ("slices_first", "plane_last") and arr.ndim == 3 and not img.n_channels:
        arr = np.moveaxis(arr, -1, 0)
    return arr, img.affine


@dataclass(frozen=True)
class ImageEvaluator:
    """Scores one reconstruction or synthesis per case with a challenge convention.

    Attributes
    ----------
    preset : str
        ``fastmri``, ``synthrad2023`` or ``cmrxrecon``.
    crop : bool
        Apply the convention's centre crop (fastMRI: square of the reference
        width; CMRxRecon: ``run4Ranking``'s ``(sx/3, sy/2)``). SynthRAD2023 has none.
    """

    preset: str
    crop: bool = True

    def __post_init__(self) -> None:
        if self.preset not in IMAGE_PRESETS:
            raise MedlensError(
                f"unknown image preset {self.preset!r}; choose from {', '.join(IMAGE_PRESETS)}"
            )

    @property
    def name(self) -> str:
        """Preset name (shown on the progress bar)."""
        return self.preset

    @property
    def region(self) -> str:
        """Region label of the rows."""
        return "body" if self.preset == "synthrad2023" else "image"

    def fingerprint(self) -> str:
        """Hash of the settings (and the medlens version)."""
        from medlens import __version__

        blob = json.dumps({"v": __version__, "kind": "image", **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def settings(self) -> dict[str, Any]:
        """Definitions used, for ``summary.json``."""
        notes = {
            "fastmri": "fastMRI evaluate.py: per volume; data_range = reference max of the "
            "volume; SSIM per slice (7x7 uniform window, sample covariance) averaged",
            "synthrad2023": "SynthRAD2023 image_metrics.py: MAE in the body mask (unclipped); "
            "PSNR and SSIM on CT clipped to [-1024, 3000] HU, data range 4024, in the mask",
            "cmrxrecon": "CMRxRecon 2023 Evaluation.py: each 2D image divided by its own max, "
            "data_range 1, means over images",
        }
        return {"preset": self.preset, "crop": self.crop, "definition": notes[self.preset]}

    def _nan_rows(self) -> tuple[tuple[str, str, float], ...]:
        return tuple((self.region, m, math.nan) for m in IMAGE_PRESETS[self.preset])

    def evaluate(self, task: CaseTask) -> CaseResult:
        """Score one case (missing or mismatched predictions give NaN rows, flagged)."""
        from medlens import metrics as mm

        ref_path = task.get("reference")
        pred_path = task.get("prediction")
        assert ref_path is not None
        layout = "slices_first" if self.preset == "fastmri" else "plane_last"
        if self.preset == "synthrad2023":
            layout = "native"
        ref, ref_aff = read_array(ref_path, layout=layout)
        if pred_path is None:
            return CaseResult(task.case, "missing_prediction", self._nan_rows(),
                              message="no prediction file")  # fmt: skip
        try:
            pred, pred_aff = read_array(pred_path, layout=layout)
        except Exception as e:
            return CaseResult(task.case, "unreadable_prediction", self._nan_rows(),
                              message=f"{pred_path.name}: {e}")  # fmt: skip
        if ref.shape != pred.shape or (
            ref_aff is not None
            and pred_aff is not None
            and not np.allclose(ref_aff, pred_aff, rtol=0, atol=1e-3)
        ):
            why = "affines differ"
            if ref.shape != pred.shape:
                why = f"shape {ref.shape} vs {pred.shape}"
            return CaseResult(task.case, "geometry_mismatch", self._nan_rows(), message=why)
        if self.preset == "fastmri":
            # as evaluate.py: real arrays are scored as stored; complex ones as magnitude
            ref = np.abs(ref) if np.iscomplexobj(ref) else ref
            pred = np.abs(pred) if np.iscomplexobj(pred) else pred
            r = mm.fastmri_image_metrics(ref, pred, crop=self.crop)
            values = {"nmse": r.nmse, "psnr": r.psnr, "ssim": r.ssim}
        elif self.preset == "cmrxrecon":
            c = mm.cmrxrecon_image_metrics(ref, pred, crop=self.crop)
            values = {"psnr": c.psnr, "ssim": c.ssim, "nmse": c.nmse}
        else:
            mask_path = task.get("mask")
            if mask_path is None:
                raise MedlensError(f"case {task.case}: SynthRAD2023 needs a body mask (--mask DIR)")
            mask, _ = read_array(mask_path, layout=layout)
            if mask.shape != ref.shape:
                return CaseResult(task.case, "geometry_mismatch", self._nan_rows(),
                                  message=f"mask shape {mask.shape} vs {ref.shape}")  # fmt: skip
            s = mm.synthrad2023_image_metrics(
                ref.astype(np.float32), pred.astype(np.float32), mask=mask.astype(np.float32)
            )
            values = {"mae": s.mae, "psnr": s.psnr, "ssim": s.ssim}
        rows = tuple((self.region, m, float(values[m])) for m in IMAGE_PRESETS[self.preset])
        return CaseResult(task.case, "ok", rows)
