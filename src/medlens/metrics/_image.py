"""Image similarity metrics for reconstruction and synthesis.

Every function takes ``(reference, prediction)`` arrays of equal shape; options are
keyword-only. Where a definition needs a data range (PSNR, SSIM) it is a required
keyword: there is no guess from the dtype. Masks select the voxels that count.

Three challenge conventions are reproduced exactly, each as one function:

- :func:`fastmri_image_metrics`: fastMRI ``evaluate.py`` (per volume, data range =
  reference maximum over the volume, SSIM per slice averaged over the volume).
- :func:`synthrad2023_image_metrics`: SynthRAD2023 ``image_metrics.py`` (CT clipped
  to [-1024, 3000] HU for PSNR and SSIM, body mask).
- :func:`cmrxrecon_image_metrics`: CMRxRecon 2023 ``Evaluation.py`` (each 2D image
  normalised by its own maximum, data range 1, mean over images), with the
  ``run4Ranking`` centre crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
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
]

#: Fixed CT intensity window of SynthRAD2023 (HU), used for clipping and data range.
SYNTHRAD2023_HU_RANGE = (-1024.0, 3000.0)


def _pair(
    reference: npt.ArrayLike, prediction: npt.ArrayLike
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.generic]]:
    ref = np.asarray(reference)
    pred = np.asarray(prediction)
    if ref.shape != pred.shape:
        raise ValueError(
            f"reference and prediction must have the same shape, got {ref.shape} and {pred.shape}"
        )
    if np.iscomplexobj(ref) or np.iscomplexobj(pred):
        raise ValueError(
            "complex input: image metrics take real arrays; pass np.abs(x) for magnitude"
        )
    return ref, pred


def _mask(mask: npt.ArrayLike | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match the image shape {shape}")
    out: npt.NDArray[np.bool_] = m > 0
    if not out.any():
        raise ValueError("mask is empty: no voxel to evaluate")
    return out


def _selected(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ref, pred = _pair(reference, prediction)
    m = _mask(mask, ref.shape)
    r = ref.astype(np.float64, copy=False)
    p = pred.astype(np.float64, copy=False)
    if m is not None:
        return r[m], p[m]
    return r.ravel(), p.ravel()


def mean_absolute_error(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, mask: npt.ArrayLike | None = None
) -> float:
    """Mean absolute error, ``mean(|reference - prediction|)``.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape (any dimension).
    mask : array_like, optional
        Voxels with ``mask > 0`` are averaged; all voxels when omitted.

    Returns
    -------
    float
        The MAE in the images' intensity unit (computed in float64).

    Raises
    ------
    ValueError
        If shapes differ, an input is complex, or the mask is empty.

    Examples
    --------
    >>> mean_absolute_error([0.0, 1.0, 2.0], [1.0, 1.0, 0.0])
    1.0
    >>> mean_absolute_error([0.0, 1.0, 2.0], [1.0, 1.0, 0.0], mask=[0, 1, 1])
    1.0
    """
    r, p = _selected(reference, prediction, mask)
    return float(np.mean(np.abs(r - p)))


def mean_squared_error(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, mask: npt.ArrayLike | None = None
) -> float:
    """Mean squared error, ``mean((reference - prediction) ** 2)``.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape.
    mask : array_like, optional
        Voxels with ``mask > 0`` are averaged; all voxels when omitted.

    Returns
    -------
    float
        The MSE (float64), equal to ``skimage.metrics.mean_squared_error``.

    Examples
    --------
    >>> mean_squared_error([0.0, 1.0, 2.0], [1.0, 1.0, 0.0])
    1.6666666666666667
    """
    r, p = _selected(reference, prediction, mask)
    return float(np.mean((r - p) ** 2))


def root_mean_squared_error(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, mask: npt.ArrayLike | None = None
) -> float:
    """Root mean squared error, ``sqrt(MSE)``.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape.
    mask : array_like, optional
        Voxels with ``mask > 0`` are averaged; all voxels when omitted.

    Returns
    -------
    float
        The RMSE in the images' intensity unit.

    Examples
    --------
    >>> root_mean_squared_error([0.0, 0.0], [2.0, -2.0])
    2.0
    """
    return math.sqrt(mean_squared_error(reference, prediction, mask=mask))


def normalized_mean_squared_error(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, mask: npt.ArrayLike | None = None
) -> float:
    """Normalised MSE, ``||reference - prediction||² / ||reference||²``.

    This is fastMRI's NMSE (``evaluate.nmse``) and CMRxRecon's.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape.
    mask : array_like, optional
        Voxels with ``mask > 0`` enter both norms; all voxels when omitted.

    Returns
    -------
    float
        The NMSE (dimensionless). ``inf`` if the reference is all zero and the
        prediction is not, ``nan`` if both are all zero.

    Examples
    --------
    >>> normalized_mean_squared_error([3.0, 4.0], [3.0, 3.0])
    0.04
    """
    r, p = _selected(reference, prediction, mask)
    num = float(np.sum((r - p) ** 2))
    den = float(np.sum(r**2))
    if den == 0.0:
        return math.nan if num == 0.0 else math.inf
    return num / den


def peak_signal_noise_ratio(
    reference: npt.ArrayLike,
    prediction: npt.ArrayLike,
    *,
    data_range: float,
    mask: npt.ArrayLike | None = None,
) -> float:
    """Peak signal-to-noise ratio, ``10 log10(data_range² / MSE)`` in dB.

    Equal to ``skimage.metrics.peak_signal_noise_ratio(reference[mask],
    prediction[mask], data_range=data_range)``.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape.
    data_range : float
        The peak value range ``L`` (for fastMRI the reference maximum, for
        SynthRAD2023 4024 HU, for images normalised to [0, 1] it is 1). Required:
        guessing it from the dtype is the commonest PSNR mistake.
    mask : array_like, optional
        Voxels with ``mask > 0`` enter the MSE; all voxels when omitted.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the images are identical.

    Raises
    ------
    ValueError
        If ``data_range`` is not positive, shapes differ or the mask is empty.

    Examples
    --------
    >>> round(peak_signal_noise_ratio([0.0, 1.0], [0.0, 0.9], data_range=1.0), 4)
    23.0103
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    mse = mean_squared_error(reference, prediction, mask=mask)
    if mse == 0.0:
        return math.inf
    return float(10.0 * np.log10(float(data_range) ** 2 / mse))


def _float_type(dtype: np.dtype[np.generic]) -> type[np.floating[Any]]:
    # The rule skimage uses: float16/float32 (and small ints) stay float32, else float64.
    if dtype in (np.float16, np.float32, np.int8, np.uint8, np.int16, np.uint16, np.bool_):
        return np.float32
    return np.float64


def _crop_border(a: npt.NDArray[np.generic], pad: int) -> npt.NDArray[np.generic]:
    if pad == 0:
        return a
    return a[tuple(slice(pad, s - pad) for s in a.shape)]


def structural_similarity_map(
    reference: npt.ArrayLike,
    prediction: npt.ArrayLike,
    *,
    data_range: float,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = True,
) -> npt.NDArray[np.floating[Any]]:
    """Local SSIM at every voxel (the map whose mean is :func:`structural_similarity`).

    The window statistics are computed with ``scipy.ndimage`` filters in
    ``reflect`` mode, in float32 when the reference is float32 (or a small
    integer type) and in float64 otherwise — the same rules as
    ``skimage.metrics.structural_similarity(..., full=True)``, whose map this equals.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape, 2D or 3D (any dimension works: the window is
        a hypercube).
    data_range : float
        Dynamic range ``L`` in ``C1 = (k1 L)²``, ``C2 = (k2 L)²``.
    win_size : int, optional
        Odd side length of the uniform window; default 7, or ``2 * int(3.5 *
        sigma + 0.5) + 1`` (11 for sigma 1.5) with Gaussian weights.
    gaussian_weights : bool, optional
        Gaussian-weighted window (``sigma``, truncated at 3.5 sigma) instead of a
        uniform one (Wang et al. 2004 use Gaussian weights and population covariance).
    sigma : float, optional
        Gaussian standard deviation in voxels.
    k1, k2 : float, optional
        SSIM constants.
    use_sample_covariance : bool, optional
        Normalise (co)variances by ``N - 1`` rather than ``N`` (skimage's default).

    Returns
    -------
    numpy.ndarray
        The SSIM map, same shape as the inputs.

    Raises
    ------
    ValueError
        If the window does not fit, is even, or ``data_range`` is not positive.
    """
    from scipy import ndimage

    ref, pred = _pair(reference, prediction)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    truncate = 3.5
    if win_size is None:
        win_size = 2 * int(truncate * sigma + 0.5) + 1 if gaussian_weights else 7
    if win_size % 2 != 1:
        raise ValueError(f"win_size must be odd, got {win_size}")
    if any(s < win_size for s in ref.shape):
        raise ValueError(
            f"win_size {win_size} exceeds the image extent {ref.shape}; pass a smaller odd win_size"
        )
    ft = _float_type(ref.dtype)
    x = ref.astype(ft, copy=False)
    y = pred.astype(ft, copy=False)

    def filt(a: npt.NDArray[np.generic]) -> npt.NDArray[np.floating[Any]]:
        if gaussian_weights:
            out: npt.NDArray[np.floating[Any]] = ndimage.gaussian_filter(
                a, sigma=sigma, truncate=truncate, mode="reflect"
            )
            return out
        return ndimage.uniform_filter(a, size=win_size)

    n = win_size**ref.ndim
    cov_norm = n / (n - 1) if use_sample_covariance else 1.0
    ux = filt(x)
    uy = filt(y)
    uxx = filt(x * x)
    uyy = filt(y * y)
    uxy = filt(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    ssim_map: npt.NDArray[np.floating[Any]] = num / den
    return ssim_map


def structural_similarity(
    reference: npt.ArrayLike,
    prediction: npt.ArrayLike,
    *,
    data_range: float,
    mask: npt.ArrayLike | None = None,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = True,
) -> float:
    """Mean structural similarity (SSIM) of two 2D or 3D images.

    The SSIM map of :func:`structural_similarity_map` is averaged over the
    voxels at least ``(win_size - 1) // 2`` from the border (the strip where the
    window leaves the image is dropped), in float64. Without a mask this equals
    ``skimage.metrics.structural_similarity`` with the same options (a 3D array
    gives 3D SSIM with a cubic window). With a mask, the cropped map is averaged
    over the cropped mask — the SynthRAD2023 masked SSIM.

    Parameters
    ----------
    reference, prediction : array_like
        Real arrays of equal shape.
    data_range : float
        Dynamic range ``L`` (required; see :func:`peak_signal_noise_ratio`).
    mask : array_like, optional
        Voxels with ``mask > 0`` (after cropping the border strip) are averaged.
    win_size, gaussian_weights, sigma, k1, k2, use_sample_covariance
        As in :func:`structural_similarity_map` (defaults: skimage's).

    Returns
    -------
    float
        Mean SSIM, at most 1 (1 for identical images).

    Raises
    ------
    ValueError
        As :func:`structural_similarity_map`, or if the mask is empty inside the
        cropped region.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((16, 16))
    >>> structural_similarity(x, x, data_range=1.0)
    1.0
    >>> round(structural_similarity(x, x + 0.1, data_range=1.0), 4)
    0.9858
    """
    ssim_map = structural_similarity_map(
        reference,
        prediction,
        data_range=data_range,
        win_size=win_size,
        gaussian_weights=gaussian_weights,
        sigma=sigma,
        k1=k1,
        k2=k2,
        use_sample_covariance=use_sample_covariance,
    )
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if gaussian_weights else 7
    pad = (win_size - 1) // 2
    cropped = _crop_border(ssim_map, pad)
    m = _mask(mask, ssim_map.shape)
    if m is None:
        return float(cropped.mean(dtype=np.float64))
    mc = _crop_border(m, pad)
    if not mc.any():
        raise ValueError("mask has no voxel inside the region where the SSIM window fits")
    return float(cropped[mc].mean(dtype=np.float64))


# --------------------------------------------------------------------------- fastMRI


@dataclass(frozen=True)
class FastMRIImageMetrics:
    """Per-volume metrics in the fastMRI convention.

    Attributes
    ----------
    nmse : float
        ``||ref - pred||² / ||ref||²`` over the cropped volume.
    psnr : float
        PSNR in dB with ``data_range = ref.max()`` over the cropped volume.
    ssim : float
        Mean over slices of the 2D SSIM (7x7 uniform window, sample
        covariance, ``data_range = ref.max()`` of the volume).
    mse : float
        Mean squared error over the cropped volume.
    """

    nmse: float
    psnr: float
    ssim: float
    mse: float


def fastmri_center_crop(volume: npt.ArrayLike, shape: tuple[int, int]) -> npt.NDArray[np.generic]:
    """Crop the last two axes to ``shape`` about the centre, as fastMRI does.

    The window starts at ``(n - s) // 2`` on each axis (fastMRI
    ``transforms.center_crop``).

    Parameters
    ----------
    volume : array_like
        Array whose last two axes are image rows and columns.
    shape : tuple of int
        Output ``(rows, cols)``; each at most the input size.

    Returns
    -------
    numpy.ndarray
        A view of the cropped array.

    Examples
    --------
    >>> import numpy as np
    >>> fastmri_center_crop(np.arange(25).reshape(5, 5), (2, 3))
    array([[ 6,  7,  8],
           [11, 12, 13]])
    """
    a = np.asarray(volume)
    rows, cols = shape
    if not (0 < rows <= a.shape[-2] and 0 < cols <= a.shape[-1]):
        raise ValueError(f"crop shape {shape} does not fit the image shape {a.shape[-2:]}")
    r0 = (a.shape[-2] - rows) // 2
    c0 = (a.shape[-1] - cols) // 2
    return a[..., r0 : r0 + rows, c0 : c0 + cols]


def fastmri_image_metrics(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, crop: bool = True
) -> FastMRIImageMetrics:
    """NMSE, PSNR, SSIM and MSE of one volume exactly as fastMRI ``evaluate.py``.

    fastMRI scores each volume separately and the challenge reports the mean
    over volumes (do that with :mod:`medlens.evaluation`). For a volume:

    1. (``crop=True``) both arrays are centre-cropped to a square of the
       reference's last-axis size, ``(W, W)``, as ``evaluate.py`` does before
       scoring (a no-op for the 320x320 challenge targets). An image with fewer
       rows than columns, where fastMRI's ``center_crop`` would fail, keeps all
       its rows: ``(min(H, W), W)``;
    2. NMSE and MSE over the whole volume; PSNR with ``data_range =
       reference.max()`` over the volume;
    3. SSIM per slice (first axis) with skimage's defaults — 7x7 uniform
       window, sample covariance, K1 = 0.01, K2 = 0.03 — and the volume's
       ``reference.max()`` as data range, averaged over slices.

    Parameters
    ----------
    reference, prediction : array_like
        Magnitude volumes in fastMRI's layout ``(slices, rows, cols)`` (e.g. the
        ``reconstruction_rss`` / ``reconstruction_esc`` datasets). Arithmetic
        follows the input dtype as in fastMRI (float32 files stay float32 inside SSIM).

    crop : bool, optional
        Apply the centre crop of step 1.

    Returns
    -------
    FastMRIImageMetrics
        The four numbers.

    Raises
    ------
    ValueError
        If the arrays are not 3D or their shapes differ after cropping.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.ones((2, 8, 8)); ref[:, 2:6, 2:6] = 3.0
    >>> m = fastmri_image_metrics(ref, ref * 0.9)
    >>> round(m.nmse, 6), round(m.psnr, 3)
    (0.01, 24.771)
    """
    ref = np.asarray(reference)
    pred = np.asarray(prediction)
    if ref.ndim != 3:
        raise ValueError(f"fastMRI volumes are (slices, rows, cols); got shape {ref.shape}")
    if crop:
        w = ref.shape[-1]
        h = min(ref.shape[-2], w)  # fastMRI asserts rows >= cols; wider images keep their rows
        ref = fastmri_center_crop(ref, (h, w))
        pred = fastmri_center_crop(pred, (h, w))
    ref, pred = _pair(ref, pred)
    maxval = float(ref.max())
    ssim = float(
        np.mean(
            [structural_similarity(r, p, data_range=maxval) for r, p in zip(ref, pred, strict=True)]
        )
    )
    return FastMRIImageMetrics(
        nmse=normalized_mean_squared_error(ref, pred),
        psnr=peak_signal_noise_ratio(ref, pred, data_range=maxval),
        ssim=ssim,
        mse=mean_squared_error(ref, pred),
    )


# --------------------------------------------------------------------------- SynthRAD2023


@dataclass(frozen=True)
class SynthRAD2023ImageMetrics:
    """Per-patient image metrics in the SynthRAD2023 convention.

    Attributes
    ----------
    mae : float
        Mean absolute error in HU inside the body mask (not clipped, as in the
        published code).
    psnr : float
        PSNR in dB inside the mask, both images clipped to [-1024, 3000] HU,
        data range 4024 HU.
    ssim : float
        3D SSIM of the clipped images with everything outside the mask set to
        -1024 HU, averaged over the mask (border strip of 3 voxels dropped).
    """

    mae: float
    psnr: float
    ssim: float


def synthrad2023_image_metrics(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, mask: npt.ArrayLike
) -> SynthRAD2023ImageMetrics:
    """MAE, PSNR and SSIM of a synthetic CT exactly as SynthRAD2023's ``image_metrics.py``.

    With ``lo, hi = -1024, 3000`` HU and the body mask ``m = mask > 0``:

    - MAE: ``sum(|ct·m - sct·m|) / sum(m)`` on the unclipped images;
    - PSNR: both images clipped to ``[lo, hi]``, then PSNR over the voxels in
      ``m`` with ``data_range = hi - lo = 4024``;
    - SSIM: both images clipped, voxels outside ``m`` set to ``lo``, shifted by
      ``-lo`` to be non-negative, 3D SSIM map (7x7x7 uniform window, sample
      covariance, data range 4024), averaged over the mask after dropping the
      3-voxel border strip (skimage's crop).

    The challenge casts images to float32 before scoring; pass float32 arrays to
    reproduce its numbers to the last digit (the arithmetic follows the dtype).

    Parameters
    ----------
    reference : array_like
        Real CT in HU, 3D.
    prediction : array_like
        Synthetic CT in HU, same shape.
    mask : array_like
        Body mask (non-zero inside), same shape. Required: the challenge always
        scores inside the mask.

    Returns
    -------
    SynthRAD2023ImageMetrics
        The three numbers.

    Raises
    ------
    ValueError
        If shapes differ or the mask is empty.
    """
    ref, pred = _pair(reference, prediction)
    m = _mask(mask, ref.shape)
    assert m is not None  # mask is required
    lo, hi = SYNTHRAD2023_HU_RANGE
    mae = mean_absolute_error(ref, pred, mask=m)
    ref_c = np.clip(ref, lo, hi)
    pred_c = np.clip(pred, lo, hi)
    psnr = peak_signal_noise_ratio(ref_c, pred_c, data_range=hi - lo, mask=m)
    ref_s = np.where(m, ref_c, lo).astype(ref_c.dtype, copy=False) - ref_c.dtype.type(lo)
    pred_s = np.where(m, pred_c, lo).astype(pred_c.dtype, copy=False) - pred_c.dtype.type(lo)
    ssim = structural_similarity(ref_s, pred_s, data_range=hi - lo, mask=m)
    return SynthRAD2023ImageMetrics(mae=mae, psnr=psnr, ssim=ssim)


# --------------------------------------------------------------------------- CMRxRecon


@dataclass(frozen=True)
class CMRxReconImageMetrics:
    """Per-file metrics in the CMRxRecon 2023 convention (means over 2D images).

    Attributes
    ----------
    psnr : float
        Mean over images of the PSNR (dB) of the max-normalised images, data range 1.
    ssim : float
        Mean over images of the 2D SSIM (7x7 uniform window), data range 1.
    nmse : float
        Mean over images of the NMSE of the max-normalised images.
    n_images : int
        Number of 2D images averaged.
    """

    psnr: float
    ssim: float
    nmse: float
    n_images: int


def _matlab_round(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else math.ceil(x - 0.5)


def cmrxrecon_crop(array: npt.ArrayLike) -> npt.NDArray[np.generic]:
    """Centre-crop the last two axes to ``(round(sx / 3), round(sy / 2))`` as CMRxRecon.

    This is the in-plane crop of CMRxRecon's ``run4Ranking.m`` (MATLAB rounding,
    window ``floor(n/2) + ceil(-c/2)`` to ``floor(n/2) + ceil(c/2)``). The
    slice and frame selection of that script (central two slices, first three
    cine frames) is left to the caller.

    Parameters
    ----------
    array : array_like
        Array whose last two axes are the image plane ``(sx, sy)``.

    Returns
    -------
    numpy.ndarray
        A view of the cropped array.

    Examples
    --------
    >>> import numpy as np
    >>> cmrxrecon_crop(np.zeros((3, 12, 10))).shape
    (3, 4, 5)
    """
    a = np.asarray(array)
    sx, sy = a.shape[-2], a.shape[-1]
    cx, cy = _matlab_round(sx / 3), _matlab_round(sy / 2)
    x0 = sx // 2 + math.ceil(-cx / 2)
    y0 = sy // 2 + math.ceil(-cy / 2)
    return a[..., x0 : sx // 2 + math.ceil(cx / 2), y0 : sy // 2 + math.ceil(cy / 2)]


def cmrxrecon_image_metrics(
    reference: npt.ArrayLike, prediction: npt.ArrayLike, *, crop: bool = False
) -> CMRxReconImageMetrics:
    """PSNR, SSIM and NMSE of one file as CMRxRecon 2023 ``Evaluation.calmetric``.

    Each 2D image (the last two axes; every other axis indexes slices, frames
    or weightings) is taken as magnitude and divided by its own maximum —
    reference by the reference image's maximum, prediction by the prediction's
    — then PSNR and SSIM use ``data_range = 1`` (the normalised reference
    maximum) and skimage's SSIM defaults, and NMSE is
    ``||ref - pred||² / ||ref||²``. The file's scores are the means over its
    images (``Main_Score.CalValue``).

    Parameters
    ----------
    reference, prediction : array_like
        Real or complex arrays ``(..., sx, sy)``; complex values are replaced by
        their magnitude.
    crop : bool, optional
        First apply :func:`cmrxrecon_crop` (for full-size images; submissions
        already in the ranking format are cropped).

    Returns
    -------
    CMRxReconImageMetrics
        Means over the 2D images.

    Raises
    ------
    ValueError
        If shapes differ or an image is all zero.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.ones((2, 8, 8)); ref[:, 3:5, 3:5] = 2.0
    >>> m = cmrxrecon_image_metrics(ref, 3.0 * ref)   # scale-invariant
    >>> m.psnr, m.ssim, m.nmse, m.n_images
    (inf, 1.0, 0.0, 2)
    """
    ref = np.abs(np.asarray(reference))
    pred = np.abs(np.asarray(prediction))
    if ref.shape != pred.shape:
        raise ValueError(
            f"reference and prediction must have the same shape, got {ref.shape} and {pred.shape}"
        )
    if ref.ndim < 2:
        raise ValueError(f"need at least 2D images, got shape {ref.shape}")
    if crop:
        ref = cmrxrecon_crop(ref)
        pred = cmrxrecon_crop(pred)
    ref2 = ref.reshape((-1, *ref.shape[-2:]))
    pred2 = pred.reshape((-1, *pred.shape[-2:]))
    psnr, ssim, nmse = [], [], []
    for idx, (g, p) in enumerate(zip(ref2, pred2, strict=True)):
        gmax, pmax = g.max(), p.max()
        if gmax == 0 or pmax == 0:
            raise ValueError(f"image {idx} is all zero and cannot be max-normalised")
        gn = g / gmax
        pn = p / pmax
        dr = float(gn.max())
        psnr.append(peak_signal_noise_ratio(gn, pn, data_range=dr))
        ssim.append(structural_similarity(gn, pn, data_range=dr))
        nmse.append(normalized_mean_squared_error(gn, pn))
    return CMRxReconImageMetrics(
        psnr=float(np.mean(psnr)),
        ssim=float(np.mean(ssim)),
        nmse=float(np.mean(nmse)),
        n_images=len(psnr),
    )
