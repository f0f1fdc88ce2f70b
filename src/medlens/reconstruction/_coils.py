"""Coil-sensitivity estimation: ESPIRiT, Walsh and low-resolution maps.

All functions take multi-coil k-space of shape ``(C, H, W)`` (coil axis first,
centred k-space) and return complex maps of the same shape, normalised so that
``sum_c |S_c|^2 = 1`` wherever the maps are not cropped to zero, with the phase
of coil 0 removed (as SigPy and BART do).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.linalg
import scipy.ndimage

from medlens.reconstruction._fft import fftc, ifft2c, ifftc

__all__ = ["espirit_maps", "expected_rss", "lowres_maps", "rss", "walsh_maps"]


def rss(x: npt.ArrayLike, axis: int = 0) -> np.ndarray:
    """Root sum of squares over ``axis`` (the coil axis by default).

    Parameters
    ----------
    x : array_like
        Complex or real coil images.
    axis : int
        Axis to combine.

    Returns
    -------
    numpy.ndarray
        Real array without ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> rss(np.array([[3.0], [4.0j]])).tolist()
    [5.0]
    """
    arr = np.asarray(x)
    return np.sqrt(np.sum(arr.real**2 + arr.imag**2, axis=axis))


def expected_rss(image: npt.ArrayLike, *, noise: float, coils: int) -> np.ndarray:
    """Expected root sum of squares of fully sampled noisy coil images given the image.

    A fully sampled RSS image (fastMRI's ``reconstruction_rss``) is biased by
    its noise: at a pixel of coil-combined magnitude ``a`` (maps normalised
    to ``sum_c |S_c|^2 = 1``) it is the norm of ``C`` complex values of
    noise ``noise`` per real component around the signal, a non-central chi
    variable whose mean is close to ``sqrt(a^2 + (2 C - 1/2) noise^2)``
    (exact at ``a = 0`` to 0.1 %, and for ``a >> noise``). Applied to a
    denoised estimate of ``a`` this estimates the RSS reference itself,
    noise floor included.

    Parameters
    ----------
    image : array_like
        Complex or magnitude coil-combined image ``a``.
    noise : float
        Noise standard deviation per real component of each coil sample.
    coils : int
        Number of coils ``C``.

    Returns
    -------
    numpy.ndarray
        Real array, the shape of ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> n = rng.normal(scale=0.1, size=(2, 8, 200000))
    >>> floor = float(np.mean(np.sqrt(np.sum(n**2, axis=(0, 1)))))  # 8 coils, no signal
    >>> bool(abs(float(expected_rss(np.zeros(1), noise=0.1, coils=8)[0]) - floor) < 1e-3)
    True
    """
    a = np.abs(np.asarray(image))
    out = np.sqrt(a.astype(np.float64) ** 2 + (2.0 * coils - 0.5) * float(noise) ** 2)
    return out.astype(a.dtype if a.dtype.kind == "f" else np.float64)


def _box(n: int, width: int) -> slice:
    width = min(width, n)
    return slice(n // 2 - width // 2, n // 2 - width // 2 + width)


def _calibration(kspace: np.ndarray, calib: int | tuple[int, int]) -> np.ndarray:
    cy, cx = (calib, calib) if isinstance(calib, int | np.integer) else calib
    cal = kspace[:, _box(kspace.shape[-2], int(cy)), _box(kspace.shape[-1], int(cx))]
    if not np.all(np.any(cal != 0, axis=(0, 1))) or not np.all(np.any(cal != 0, axis=(0, 2))):
        raise ValueError(
            f"the central {cal.shape[-2]}x{cal.shape[-1]} calibration region contains "
            "unsampled (all-zero) lines; give a smaller calib size"
        )
    return cal


def _phase_normalise(maps: np.ndarray) -> np.ndarray:
    ref = maps[0]
    mag = np.abs(ref)
    phase = np.where(mag > 0, np.conj(ref) / np.where(mag > 0, mag, 1), 1)
    return maps * phase


def _resize_centre(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-pad or crop the last axes of ``x`` to ``shape``, centre (n//2) kept aligned."""
    out = np.zeros(x.shape[: x.ndim - len(shape)] + tuple(shape), dtype=x.dtype)
    src, dst = [], []
    for n_in, n_out in zip(x.shape[-len(shape) :], shape, strict=True):
        i0 = max(n_in // 2 - n_out // 2, 0)
        o0 = max(n_out // 2 - n_in // 2, 0)
        n = min(n_in, n_out)
        src.append(slice(i0, i0 + n))
        dst.append(slice(o0, o0 + n))
    lead = (slice(None),) * (x.ndim - len(shape))
    out[(*lead, *dst)] = x[(*lead, *src)]
    return out


def _centred_ifft_interp(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``ifftc`` of the centred small spectrum ``spec`` (m_y, m_x, ...) zero-padded to ``shape``.

    Works in the layout (H, W, ...) directly and folds both fftshifts into
    index arithmetic and a phase ramp, so no full-size array is shifted or
    transposed.
    """
    h, w = shape
    m_y, m_x = spec.shape[:2]
    ky = np.arange(m_y) - m_y // 2  # centred frequencies
    kx = np.arange(m_x) - m_x // 2
    # spatial fftshift by n // 2 == spectrum times exp(-2 pi i k (n // 2) / n)
    ramp = np.exp(-2j * np.pi * ky * (h // 2) / h)[:, None] * np.exp(
        -2j * np.pi * kx * (w // 2) / w
    )[None, :]
    full = np.zeros((h, w, *spec.shape[2:]), dtype=np.complex64)
    full[np.ix_(ky % h, kx % w)] = spec * ramp.reshape(ramp.shape + (1,) * (spec.ndim - 2))
    return np.asarray(scipy.fft.ifftn(full, axes=(0, 1), norm="ortho", overwrite_x=True))


def _top_eigenvectors(
    g: np.ndarray, *, stride: int, n_power: int, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenvector (C, H, W) and eigenvalue (H, W) of Hermitian ``g`` (H, W, C, C)."""
    h, w, c, _ = g.shape
    stride = max(1, min(stride, min(h, w) // 32))
    if stride <= 1:
        ev, vec = np.linalg.eigh(g)
        return np.moveaxis(vec[..., :, -1], -1, 0), ev[..., -1].real
    coarse = g[::stride, ::stride]
    _, vec = np.linalg.eigh(coarse)
    top = np.moveaxis(vec[..., :, -1], -1, 0)  # (C, h', w')
    top = _phase_normalise(top)
    yy, xx = np.meshgrid(np.arange(h) / stride, np.arange(w) / stride, indexing="ij")
    coords = np.stack([yy, xx])
    init = np.empty((h, w, c, 1), dtype=np.complex64)
    for i in range(c):
        re = scipy.ndimage.map_coordinates(top[i].real, coords, order=1, mode="nearest")
        im = scipy.ndimage.map_coordinates(top[i].imag, coords, order=1, mode="nearest")
        init[..., i, 0] = re + 1j * im
    v = init
    for _ in range(max(n_power, 1)):
        v_new = g @ v
        v_new /= np.maximum(np.linalg.norm(v_new, axis=-2, keepdims=True), 1e-30)
        change = float(np.max(np.abs(v_new - v)))
        v = v_new
        if change < tol:
            break
    eig = np.linalg.norm(g @ v, axis=-2)[..., 0]
    return np.moveaxis(v[..., 0], -1, 0), eig


def espirit_maps(
    kspace: npt.ArrayLike,
    *,
    calib: int | tuple[int, int] = 24,
    kernel_size: int = 6,
    threshold: float = 0.02,
    crop: float = 0.95,
    noise: float | None = None,
    noise_factor: float = 3.0,
    sets: int = 1,
    set_crop: float = 0.8,
    return_eigenvalues: bool = False,
    eig_stride: int = 4,
    n_power: int = 30,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """ESPIRiT coil sensitivities from the fully sampled centre of k-space.

    The calibration matrix of ``kernel_size`` x ``kernel_size`` blocks of the
    central ``calib`` region is decomposed by SVD; the kernels whose singular
    value exceeds ``threshold`` times the largest span the signal space. The
    maps are the top eigenvector of the per-pixel ``C x C`` matrix
    ``G(r) = sum_j a_j(r) a_j(r)^H`` of the kernels' images ``a_j``; pixels
    whose top eigenvalue is ``<= crop`` are set to zero (SigPy's
    ``EspiritCalib`` conventions). Given the ``noise`` level of the samples,
    the signal space is instead the kernels whose singular value exceeds
    ``noise_factor`` times the largest singular value of a pure-noise matrix
    of the same shape, ``sqrt(2) * noise * (sqrt(rows) + sqrt(cols))``
    (Bai-Yin). ``G`` is a trigonometric polynomial of
    degree ``kernel_size - 1``, so it is formed exactly on a small grid and
    Fourier-interpolated to the image grid, which makes the calibration fast.

    With ``sets`` > 1 the next eigenvectors of ``G`` are further sets of maps
    (soft SENSE, as BART's ``ecalib -m``), each zero where its eigenvalue is
    ``<= set_crop`` (0.8, BART's crop). One set cannot follow sensitivities
    that jump where the object meets the edge of the field of view (the maps
    are periodic in the field of view, the coils are not): there the first
    eigenvalue stays near 1, the second rises to 0.8-0.9, and the two
    eigenvectors together span the true sensitivity. On objects that stay
    clear of the edge the second eigenvalue stays below 0.8 and the extra set
    is all zero.

    Parameters
    ----------
    kspace : array_like, shape (C, H, W)
        Centred multi-coil k-space (undersampled is fine: only the
        calibration region is used).
    calib : int or tuple of int
        Size of the central calibration region (must be fully sampled).
    kernel_size : int
        ESPIRiT kernel width.
    threshold : float
        Relative singular-value threshold of the signal space.
    crop : float
        Eigenvalue threshold under which maps are set to zero (0 keeps all).
    noise : float, optional
        Noise standard deviation per real component of a sample (for example
        :func:`~medlens.reconstruction.calibration_noise_level`). If given,
        ``threshold`` is not used: the signal-space threshold follows from it.
    noise_factor : float
        Multiple of the noise matrix's largest singular value kept as signal.
    sets : int
        Number of sets of maps (eigenvectors of ``G`` per pixel).
    set_crop : float
        Eigenvalue threshold of the sets after the first.
    return_eigenvalues : bool
        Also return the eigenvalue of each set per pixel.
    eig_stride : int
        The exact eigen-decomposition runs on every ``eig_stride``-th pixel;
        its (smooth) top eigenvectors are interpolated to all pixels and
        refined by power iterations there. The stride is reduced so that the
        coarse grid keeps at least 32 pixels per axis; 1 decomposes every
        pixel exactly (slower).
    n_power : int
        Most power iterations after the interpolation (they stop once no
        map entry changes by more than 1e-6).

    Returns
    -------
    maps : numpy.ndarray, shape (C, H, W), or (sets, C, H, W) if ``sets`` > 1
        Complex64 sensitivity maps.
    eigenvalues : numpy.ndarray, shape (H, W), or (sets, H, W)
        Only if ``return_eigenvalues``.

    Raises
    ------
    ValueError
        If the calibration region is not fully sampled or too small, or
        ``sets`` is not between 1 and the number of coils.

    References
    ----------
    M. Uecker et al., "ESPIRiT - an eigenvalue approach to autocalibrating
    parallel MRI: where SENSE meets GRAPPA", MRM 71(3), 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from medlens.reconstruction import fft2c
    >>> yy, xx = np.mgrid[-16:16, -16:16] / 16
    >>> img = (yy**2 + xx**2 < 0.6).astype(float)
    >>> true = np.stack([1 + xx, 1 - xx, 1 + 1j * yy]) / 2
    >>> maps = espirit_maps(fft2c(true * img), calib=16, kernel_size=4)
    >>> maps.shape, bool(abs(np.sum(abs(maps[:, 16, 16]) ** 2) - 1) < 1e-4)
    ((3, 32, 32), True)
    """
    ksp = np.asarray(kspace)
    if ksp.ndim != 3:
        raise ValueError(f"kspace must have shape (C, H, W), got {ksp.shape}")
    n_coils, h, w = ksp.shape
    if not 1 <= sets <= n_coils:
        raise ValueError(f"sets must be between 1 and the number of coils {n_coils}, got {sets}")
    cal = _calibration(ksp, calib).astype(np.complex128)
    k = int(kernel_size)
    if cal.shape[1] < k or cal.shape[2] < k:
        raise ValueError(f"calibration region {cal.shape[1:]} smaller than kernel {k}")
    blocks = np.lib.stride_tricks.sliding_window_view(cal, (k, k), axis=(1, 2))
    # (C, ny, nx, k, k) -> rows: block positions, cols: (coil, ky, kx)
    mat = blocks.transpose(1, 2, 0, 3, 4).reshape(-1, n_coils * k * k)
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    # one BLAS thread for this small (C k^2)^2 problem: multithreaded OpenBLAS took
    # 5 s instead of 0.05 s on this 2-core machine under load
    with threadpool_limits(limits=1, user_api="blas"):
        gram = mat.conj().T @ mat
        evals, evecs = scipy.linalg.eigh(gram, driver="evr")
    sing = np.sqrt(np.clip(evals[::-1], 0, None))
    vecs = evecs[:, ::-1]
    if noise is None:
        keep = sing > threshold * sing[0]
    else:
        edge = np.sqrt(2.0) * float(noise) * (np.sqrt(mat.shape[0]) + np.sqrt(mat.shape[1]))
        keep = sing > noise_factor * edge
        keep[0] = True  # the strongest kernel is signal whatever the noise estimate
    # rows of VH from the SVD mat = U S VH are conj(vecs).T
    kernels = vecs[:, keep].conj().T.reshape(-1, n_coils, k, k)
    # kernel images on a small grid where G is represented exactly
    m_y = min(h, 2 * k + 2)
    m_x = min(w, 2 * k + 2)
    small = ifftc(_resize_centre(kernels, (m_y, m_x)), axes=(-2, -1))
    g_small = np.einsum("jcyx,jdyx->cdyx", small, small.conj(), optimize=True)
    g_small *= (m_y * m_x) / (k * k)
    if (m_y, m_x) == (h, w):
        g = np.ascontiguousarray(g_small.transpose(2, 3, 0, 1)).astype(np.complex64)
    else:
        spec = fftc(g_small, axes=(-2, -1)) * np.sqrt(h * w / (m_y * m_x))
        g = _centred_ifft_interp(spec.transpose(2, 3, 0, 1), (h, w))
    maps, eig = _top_eigenvectors(g, stride=eig_stride, n_power=n_power)
    maps = _phase_normalise(maps)
    if crop > 0:
        maps = maps * (eig > crop)
    maps = maps.astype(np.complex64)
    if sets > 1:
        # the further eigenvectors exactly (they are not smooth where eigenvalues cross,
        # so not interpolated from a coarse grid as the first set is), and only where they
        # can be used: the second eigenvalue is at most trace(G) - the first
        trace = np.einsum("yxcc->yx", g).real
        where = trace - eig > set_crop
        ev_all = np.zeros((h, w, n_coils), dtype=np.float32)
        vec_all = np.zeros((h, w, n_coils, n_coils), dtype=np.complex64)
        if where.any():
            ev_all[where], vec_all[where] = np.linalg.eigh(g[where])
        extra = [
            _phase_normalise(np.moveaxis(vec_all[..., :, -1 - i], -1, 0))
            * (ev_all[..., -1 - i] > set_crop)
            for i in range(1, sets)
        ]
        # where another set is used the first two eigenvalues are close and the power
        # iterations converge slowly: take the exact (orthogonal) first eigenvector there
        used = np.any(np.stack(extra) != 0, axis=(0, 1))
        exact = _phase_normalise(np.moveaxis(vec_all[..., :, -1], -1, 0))
        if crop > 0:
            exact = exact * (ev_all[..., -1] > crop)
        maps = np.where(used, exact, maps)
        eig = np.where(used, ev_all[..., -1], eig)
        maps = np.stack([maps, *extra]).astype(np.complex64)
        eig = np.stack([eig, *(ev_all[..., -1 - i] for i in range(1, sets))])
    if return_eigenvalues:
        return maps, eig.astype(np.float32)
    return maps


def _lowres_images(
    kspace: np.ndarray, calib: int | tuple[int, int]
) -> np.ndarray:
    _, h, w = kspace.shape
    cal = _calibration(kspace, calib)
    wy = np.hanning(cal.shape[1] + 2)[1:-1]
    wx = np.hanning(cal.shape[2] + 2)[1:-1]
    cal = cal * wy[:, None] * wx[None, :]
    return ifft2c(_resize_centre(cal, (h, w)))


def lowres_maps(
    kspace: npt.ArrayLike,
    *,
    calib: int | tuple[int, int] = 24,
    threshold: float = 0.05,
) -> np.ndarray:
    """Coil maps from the Hann-windowed calibration region divided by its RSS.

    Parameters
    ----------
    kspace : array_like, shape (C, H, W)
        Centred multi-coil k-space.
    calib : int or tuple of int
        Size of the fully sampled central region.
    threshold : float
        Pixels whose low-resolution RSS is below ``threshold`` times its
        maximum get zero maps.

    Returns
    -------
    numpy.ndarray, shape (C, H, W)
        Complex64 sensitivity maps.

    Examples
    --------
    >>> import numpy as np
    >>> from medlens.reconstruction import fft2c
    >>> yy, xx = np.mgrid[-16:16, -16:16] / 16
    >>> img = (yy**2 + xx**2 < 0.6).astype(float)
    >>> maps = lowres_maps(fft2c(np.stack([1 + xx, 1 - xx]) * img), calib=12)
    >>> bool(abs(np.sum(abs(maps[:, 16, 16]) ** 2) - 1) < 1e-5)
    True
    """
    ksp = np.asarray(kspace)
    if ksp.ndim != 3:
        raise ValueError(f"kspace must have shape (C, H, W), got {ksp.shape}")
    imgs = _lowres_images(ksp, calib)
    norm = rss(imgs)
    support = norm > threshold * norm.max()
    maps = np.where(support, imgs / np.where(support, norm, 1), 0)
    return _phase_normalise(maps).astype(np.complex64)


def walsh_maps(
    kspace: npt.ArrayLike,
    *,
    calib: int | tuple[int, int] = 24,
    window: int = 5,
    threshold: float = 0.05,
) -> np.ndarray:
    """Walsh's adaptive coil combination maps from low-resolution coil images.

    The map at each pixel is the top eigenvector of the coil covariance
    averaged over a ``window`` x ``window`` neighbourhood.

    Parameters
    ----------
    kspace : array_like, shape (C, H, W)
        Centred multi-coil k-space.
    calib : int or tuple of int
        Size of the fully sampled central region used for the coil images.
    window : int
        Width of the averaging window (pixels).
    threshold : float
        Pixels whose low-resolution RSS is below ``threshold`` times its
        maximum get zero maps.

    Returns
    -------
    numpy.ndarray, shape (C, H, W)
        Complex64 sensitivity maps.

    References
    ----------
    D. O. Walsh, A. F. Gmitro, M. W. Marcellin, "Adaptive reconstruction of
    phased array MR imagery", MRM 43(5), 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from medlens.reconstruction import fft2c
    >>> yy, xx = np.mgrid[-16:16, -16:16] / 16
    >>> img = (yy**2 + xx**2 < 0.6).astype(float)
    >>> maps = walsh_maps(fft2c(np.stack([1 + xx, 1 - xx]) * img), calib=12)
    >>> maps.shape
    (2, 32, 32)
    """
    ksp = np.asarray(kspace)
    if ksp.ndim != 3:
        raise ValueError(f"kspace must have shape (C, H, W), got {ksp.shape}")
    imgs = _lowres_images(ksp, calib)
    cov = imgs[:, None] * imgs[None].conj()  # (C, C, H, W)
    cov = scipy.ndimage.uniform_filter(cov.real, size=(1, 1, window, window)) + 1j * (
        scipy.ndimage.uniform_filter(cov.imag, size=(1, 1, window, window))
    )
    cov = np.ascontiguousarray(cov.transpose(2, 3, 0, 1)).astype(np.complex64)
    _, vec = np.linalg.eigh(cov)
    maps = np.moveaxis(vec[..., :, -1], -1, 0)
    norm = rss(imgs)
    maps = maps * (norm > threshold * norm.max())
    return _phase_normalise(maps).astype(np.complex64)
