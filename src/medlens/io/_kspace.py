"""Raw k-space files: fastMRI HDF5 and CMRxRecon 2023 MATLAB (.mat) files.

fastMRI (``https://fastmri.org``) stores one volume per HDF5 file:

- ``kspace``: ``(slices, coils, H, W)`` complex64 (``(slices, H, W)`` single-coil),
  centred, ``H`` the (oversampled) readout and ``W`` the phase-encoding axis;
- ``reconstruction_rss`` (multi-coil) / ``reconstruction_esc`` (single-coil):
  ``(slices, h, w)`` float32 targets, centre-cropped to the recon matrix;
- ``ismrmrd_header``: ISMRMRD XML with the encoded and recon matrix sizes
  (``encoding/encodedSpace/matrixSize`` and ``encoding/reconSpace/matrixSize``);
- attributes ``acquisition``, ``max``, ``norm``, ``patient_id``; test files
  additionally have a ``mask`` dataset ``(W,)`` and attributes
  ``acceleration`` and ``num_low_frequency``.

CMRxRecon 2023 ``.mat`` files are MATLAB v7.3 (HDF5 with a 512-byte MATLAB
header): ``kspace_full`` / ``kspace_sub04|08|10`` (``kspace_single_*``
single-coil) and, in ``*_mask.mat``, ``mask04|08|10``. MATLAB's dimension
order is ``(kx, ky, kc, kz, t)`` for cine and ``(kx, ky, kc, kz, w)`` for
mapping; h5py sees it reversed and complex values as ``(real, imag)``
compounds, which the official loader (``loadFun.py``) undoes with
``np.transpose(data, [4, 3, 2, 1, 0])`` — as :meth:`CMRxReconKspace.official`
does here. medlens's own layout puts coils before the spatial axes and the
undersampled ``ky`` last: ``(t, kz, kc, kx, ky)``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens._atomic import atomic_path
from medlens.io._errors import ImageReadError, ImageWriteError

__all__ = [
    "CMRxReconKspace",
    "FastMRIVolume",
    "KspaceReadError",
    "ismrmrd_header",
    "read_cmrxrecon",
    "read_cmrxrecon_mask",
    "read_fastmri",
    "write_cmrxrecon",
    "write_fastmri",
]

_NS = "http://www.ismrm.org/ISMRMRD"


class KspaceReadError(ImageReadError):
    """A k-space file is missing, truncated, not HDF5/MATLAB, or lacks the expected data."""


def _open_h5(path: Path) -> Any:
    import h5py

    if not path.exists():
        raise KspaceReadError(path, "no such file")
    if path.is_dir():
        raise KspaceReadError(path, "is a folder, expected a k-space file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        size = path.stat().st_size
        raise KspaceReadError(
            path, f"not a readable HDF5 file ({size} bytes; truncated or another format): {e}"
        ) from None


# ---------------------------------------------------------------------------------------
# fastMRI


def _text(root: ET.Element, *names: str) -> str | None:
    node: ET.Element | None = root
    for n in names:
        if node is None:
            return None
        node = node.find(f"{{{_NS}}}{n}")
    return None if node is None or node.text is None else node.text.strip()


def _triple(root: ET.Element, *names: str, cast: type = int) -> tuple[Any, Any, Any] | None:
    vals = [_text(root, *names, ax) for ax in ("x", "y", "z")]
    out: list[Any] = []
    for v in vals:
        if v is None:
            return None
        out.append(round(float(v)) if cast is int else float(v))
    return (out[0], out[1], out[2])


@dataclass(frozen=True)
class FastMRIVolume:
    """One fastMRI HDF5 volume.

    Attributes
    ----------
    path : str
        The file.
    kspace : numpy.ndarray
        ``(slices, coils, H, W)`` complex64 (``(slices, 1, H, W)`` for
        single-coil files, whose coil axis is added here).
    mask : numpy.ndarray of bool or None
        Sampled columns ``(W,)`` (test files) or a 2D mask ``(H, W)``.
    target : numpy.ndarray or None
        ``reconstruction_rss`` (or ``reconstruction_esc``), ``(slices, h, w)``.
    header : str
        The ISMRMRD XML header ("" if absent).
    encoded_size, recon_size : tuple of int or None
        ``(x, y, z)`` matrix sizes from the header.
    encoded_fov_mm, recon_fov_mm : tuple of float or None
        ``(x, y, z)`` fields of view in mm from the header.
    attrs : Mapping
        The file's attributes (``acquisition``, ``max``, ``norm``,
        ``patient_id``, ``acceleration``, ``num_low_frequency``, ...).
    maps : numpy.ndarray or None
        ``sensitivity_maps`` ``(coils, H, W)`` if the file has them (medlens
        simulations do; scanner data does not).
    multicoil : bool
        False if the file stored single-coil ``(slices, H, W)`` k-space.
    """

    path: str
    kspace: np.ndarray
    mask: np.ndarray | None
    target: np.ndarray | None
    header: str
    encoded_size: tuple[int, int, int] | None
    recon_size: tuple[int, int, int] | None
    encoded_fov_mm: tuple[float, float, float] | None
    recon_fov_mm: tuple[float, float, float] | None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    maps: np.ndarray | None = None
    multicoil: bool = True

    @property
    def acceleration(self) -> int | None:
        """Nominal acceleration from the attributes, if recorded."""
        v = self.attrs.get("acceleration")
        return None if v is None else int(v)

    @property
    def num_low_frequency(self) -> int | None:
        """Number of fully sampled centre columns from the attributes, if recorded."""
        v = self.attrs.get("num_low_frequency")
        return None if v is None else int(v)

    @property
    def masked_kspace(self) -> np.ndarray:
        """k-space with the mask applied (the k-space itself if there is no mask)."""
        return self.kspace if self.mask is None else self.kspace * self.mask


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_fastmri(path: str | os.PathLike[str], *, slices: slice | None = None) -> FastMRIVolume:
    """Read a fastMRI-layout HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5`` file.
    slices : slice, optional
        Read only these slices.

    Returns
    -------
    FastMRIVolume
        k-space, mask, target, header sizes and attributes.

    Raises
    ------
    KspaceReadError
        If the file is missing, not HDF5, truncated, or has no valid ``kspace``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> k = np.ones((2, 4, 8, 6), np.complex64)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_fastmri(os.path.join(d, "a.h5"), k, acquisition="CORPD_FBK")
    ...     vol = read_fastmri(os.path.join(d, "a.h5"))
    >>> vol.kspace.shape, vol.recon_size, vol.attrs["acquisition"]
    ((2, 4, 8, 6), (8, 6, 1), 'CORPD_FBK')
    """
    p = Path(path)
    sel = slice(None) if slices is None else slices
    with _open_h5(p) as f:
        if "kspace" not in f:
            raise KspaceReadError(
                p, f"no 'kspace' dataset (found: {', '.join(sorted(f.keys())) or 'nothing'})"
            )
        ds = f["kspace"]
        if ds.ndim not in (3, 4):
            raise KspaceReadError(
                p, f"'kspace' must be (slices, coils, H, W) or (slices, H, W), got {ds.shape}"
            )
        if ds.dtype.kind != "c":
            raise KspaceReadError(p, f"'kspace' must be complex, got dtype {ds.dtype}")
        try:
            kspace = np.asarray(ds[sel], dtype=np.complex64)
            target = None
            for key in ("reconstruction_rss", "reconstruction_esc"):
                if key in f:
                    target = np.asarray(f[key][sel], dtype=np.float32)
                    break
            mask = np.asarray(f["mask"][()]).astype(bool) if "mask" in f else None
            maps = (
                np.asarray(f["sensitivity_maps"][()], dtype=np.complex64)
                if "sensitivity_maps" in f
                else None
            )
            header = f["ismrmrd_header"][()] if "ismrmrd_header" in f else b""
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
        except OSError as e:
            raise KspaceReadError(p, f"truncated or corrupt data: {e}") from None
    multicoil = kspace.ndim == 4
    if not multicoil:
        kspace = kspace[:, None]
    if mask is not None and mask.shape not in ((kspace.shape[-1],), kspace.shape[-2:]):
        raise KspaceReadError(
            p, f"'mask' shape {mask.shape} fits neither (W,) nor (H, W) of k-space {kspace.shape}"
        )
    text = header.decode("utf-8", "replace") if isinstance(header, bytes) else str(header)
    enc = rec = enc_fov = rec_fov = None
    if text:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise KspaceReadError(p, f"'ismrmrd_header' is not valid XML: {e}") from None
        enc = _triple(root, "encoding", "encodedSpace", "matrixSize")
        rec = _triple(root, "encoding", "reconSpace", "matrixSize")
        enc_fov = _triple(root, "encoding", "encodedSpace", "fieldOfView_mm", cast=float)
        rec_fov = _triple(root, "encoding", "reconSpace", "fieldOfView_mm", cast=float)
    return FastMRIVolume(
        path=str(p),
        kspace=kspace,
        mask=mask,
        target=target,
        header=text,
        encoded_size=enc,
        recon_size=rec,
        encoded_fov_mm=enc_fov,
        recon_fov_mm=rec_fov,
        attrs=attrs,
        maps=maps,
        multicoil=multicoil,
    )


def ismrmrd_header(
    encoded_size: tuple[int, int, int],
    recon_size: tuple[int, int, int] | None = None,
    *,
    encoded_fov_mm: tuple[float, float, float] | None = None,
    recon_fov_mm: tuple[float, float, float] | None = None,
    coils: int | None = None,
) -> str:
    """A minimal ISMRMRD XML header as fastMRI's loader reads it.

    Parameters
    ----------
    encoded_size : tuple of int
        ``(x, y, z)`` encoded matrix (``x`` readout = k-space ``H``, ``y`` = ``W``).
    recon_size : tuple of int, optional
        Recon matrix (the encoded one if None).
    encoded_fov_mm, recon_fov_mm : tuple of float, optional
        Fields of view in mm (1 mm per sample if None).
    coils : int, optional
        Receiver channels.

    Returns
    -------
    str
        XML text with ``encodingLimits/kspace_encoding_step_1`` set so that
        fastMRI computes no padding.

    Examples
    --------
    >>> "<x>640</x>" in ismrmrd_header((640, 368, 1), (320, 320, 1))
    True
    """
    rec = tuple(encoded_size) if recon_size is None else tuple(recon_size)
    efov = tuple(float(v) for v in encoded_fov_mm or encoded_size)
    rfov = tuple(float(v) for v in recon_fov_mm or rec)
    ET.register_namespace("", _NS)
    root = ET.Element(f"{{{_NS}}}ismrmrdHeader")

    def sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{_NS}}}{name}")
        if text is not None:
            el.text = text
        return el

    if coils is not None:
        sys_info = sub(root, "acquisitionSystemInformation")
        sub(sys_info, "receiverChannels", str(int(coils)))
    enc = sub(root, "encoding")
    for space, size, fov in (("encodedSpace", encoded_size, efov), ("reconSpace", rec, rfov)):
        sp = sub(enc, space)
        ms = sub(sp, "matrixSize")
        fv = sub(sp, "fieldOfView_mm")
        for ax, n, mm in zip("xyz", size, fov, strict=True):
            sub(ms, ax, str(int(n)))
            sub(fv, ax, f"{mm:.4f}")
    lim = sub(enc, "encodingLimits")
    step = sub(lim, "kspace_encoding_step_1")
    ny = int(encoded_size[1])
    sub(step, "minimum", "0")
    sub(step, "maximum", str(ny - 1))
    sub(step, "center", str(ny // 2))
    sub(enc, "trajectory", "cartesian")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_fastmri(
    path: str | os.PathLike[str],
    kspace: npt.ArrayLike,
    *,
    mask: npt.ArrayLike | None = None,
    target: npt.ArrayLike | None = None,
    header: str | None = None,
    acquisition: str = "CORPD_FBK",
    attrs: Mapping[str, Any] | None = None,
    maps: npt.ArrayLike | None = None,
    fov_mm: tuple[float, float, float] | None = None,
) -> None:
    """Write a fastMRI-layout HDF5 file (atomically) that fastMRI's loader opens.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.h5``.
    kspace : array_like
        ``(slices, coils, H, W)`` complex k-space (zero-filled if undersampled).
    mask : array_like of bool, optional
        ``(W,)`` or ``(H, W)`` sampling mask (stored as ``mask``).
    target : array_like, optional
        ``(slices, h, w)`` reference stored as ``reconstruction_rss``.
    header : str, optional
        ISMRMRD XML; built with :func:`ismrmrd_header` from the k-space shape
        (and ``fov_mm``) if None.
    acquisition : str
        ``acquisition`` attribute.
    attrs : Mapping, optional
        More attributes (``acceleration``, ``num_low_frequency``, ...).
    maps : array_like, optional
        ``(coils, H, W)`` sensitivities stored as ``sensitivity_maps``.
    fov_mm : tuple of float, optional
        ``(x, y, z)`` field of view for the generated header.

    Raises
    ------
    ValueError
        If the arrays have the wrong shapes.
    ImageWriteError
        If the file cannot be written.
    """
    import h5py

    k = np.asarray(kspace)
    if k.ndim != 4:
        raise ValueError(f"kspace must be (slices, coils, H, W), got shape {k.shape}")
    n_slices, n_coils, h, w = k.shape
    if mask is not None:
        m = np.asarray(mask)
        if m.shape not in ((w,), (h, w)):
            raise ValueError(f"mask shape {m.shape} fits neither (W,)={w} nor (H, W)={(h, w)}")
    if target is not None:
        t = np.asarray(target, dtype=np.float32)
        if t.ndim != 3 or t.shape[0] != n_slices:
            raise ValueError(f"target must be (slices={n_slices}, h, w), got {t.shape}")
    xml = header if header is not None else ismrmrd_header(
        (h, w, 1), (h, w, 1), encoded_fov_mm=fov_mm, recon_fov_mm=fov_mm, coils=n_coils
    )
    all_attrs: dict[str, Any] = {"acquisition": acquisition, "patient_id": Path(path).stem}
    if target is not None:
        all_attrs["max"] = float(np.max(t))
        all_attrs["norm"] = float(np.linalg.norm(t))
    all_attrs.update(dict(attrs or {}))
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=k.astype(np.complex64))
            if mask is not None:
                f.create_dataset("mask", data=np.asarray(mask, dtype=bool))
            if target is not None:
                f.create_dataset("reconstruction_rss", data=t)
            if maps is not None:
                f.create_dataset("sensitivity_maps", data=np.asarray(maps, dtype=np.complex64))
            f.create_dataset("ismrmrd_header", data=xml.encode("utf-8"))
            for key, val in all_attrs.items():
                f.attrs[key] = val
    except OSError as e:
        raise ImageWriteError(path, str(e)) from None


# ---------------------------------------------------------------------------------------
# CMRxRecon


_SUB = re.compile(r"^kspace(?:_single)?_(full|sub(\d+))$")


@dataclass(frozen=True)
class CMRxReconKspace:
    """k-space from a CMRxRecon 2023 ``.mat`` file.

    Attributes
    ----------
    path : str
        The file.
    key : str
        Variable read (``kspace_full``, ``kspace_sub04``, ...).
    kspace : numpy.ndarray
        complex64 in medlens layout ``(t, kz, kc, kx, ky)`` (``kc = 1`` for
        single-coil files): frames (or weightings), slices, coils, then the
        image plane with the undersampled ``ky`` last.
    acceleration : int or None
        4, 8 or 10 for ``kspace_subNN``; None for fully sampled data.
    kind : str
        ``"cine"``, ``"mapping"`` (T1/T2 map files) or ``"unknown"``, from the
        file name.
    """

    path: str
    key: str
    kspace: np.ndarray
    acceleration: int | None
    kind: str

    def official(self) -> np.ndarray:
        """The array in the challenge's MATLAB order ``(kx, ky, kc, kz, t)`` (mapping: ``w``)."""
        return np.transpose(self.kspace, (3, 4, 2, 1, 0))


def _mat_kind(path: Path) -> str:
    name = path.name.lower()
    if name.startswith("cine"):
        return "cine"
    if name.startswith(("t1map", "t2map")):
        return "mapping"
    return "unknown"


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    # HDF5 signature at 0 or, for MATLAB v7.3, after the 512-byte user block
    sig = b"\x89HDF\r\n\x1a\n"
    return head[:8] == sig or head[512:520] == sig


def _complex(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):
        return (arr["real"] + 1j * arr["imag"]).astype(np.complex64)
    return np.asarray(arr)


def _read_mat_vars(path: Path) -> dict[str, Any]:
    """Names -> lazily readable arrays in MATLAB order (v7.3 via h5py, v5 via SciPy)."""
    if not path.exists():
        raise KspaceReadError(path, "no such file")
    if path.is_dir():
        raise KspaceReadError(path, "is a folder, expected a .mat file")
    if _is_hdf5(path):
        return {"__hdf5__": True}
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except (
        scipy.io.matlab.MatReadError,
        ValueError,
        TypeError,
        OSError,
        NotImplementedError,
    ) as e:
        size = path.stat().st_size
        raise KspaceReadError(
            path, f"not a MATLAB file (or truncated; {size} bytes): {e}"
        ) from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _mat_array(path: Path, key: str | None, pattern: re.Pattern[str]) -> tuple[str, np.ndarray]:
    """Read one variable (chosen by ``key`` or the first matching ``pattern``) in MATLAB order."""
    vars_ = _read_mat_vars(path)
    if "__hdf5__" in vars_:
        with _open_h5(path) as f:
            names = [k for k in f.keys() if not k.startswith("#")]
            chosen = key if key is not None else next(
                (n for n in sorted(names) if pattern.match(n)), None
            )
            if chosen is None or chosen not in f:
                raise KspaceReadError(
                    path,
                    f"no variable {key!r}" if key else "no CMRxRecon variable"
                    f" (found: {', '.join(sorted(names)) or 'nothing'})",
                )
            try:
                raw = f[chosen][()]
            except OSError as e:
                raise KspaceReadError(path, f"truncated or corrupt {chosen!r}: {e}") from None
        # h5py sees MATLAB's column-major array with its axes reversed
        return chosen, np.transpose(_complex(np.asarray(raw)))
    names = sorted(vars_)
    chosen = key if key is not None else next((n for n in names if pattern.match(n)), None)
    if chosen is None or chosen not in vars_:
        raise KspaceReadError(
            path,
            (f"no variable {key!r}" if key else "no CMRxRecon variable")
            + f" (found: {', '.join(names) or 'nothing'})",
        )
    return chosen, np.asarray(vars_[chosen])


def read_cmrxrecon(path: str | os.PathLike[str], key: str | None = None) -> CMRxReconKspace:
    """Read k-space from a CMRxRecon 2023 ``.mat`` file (v7.3/HDF5 or v5).

    Parameters
    ----------
    path : str or os.PathLike
        ``cine_sax.mat``, ``T1map.mat``, ... .
    key : str, optional
        Variable to read; the first ``kspace_*`` variable if None.

    Returns
    -------
    CMRxReconKspace
        k-space in medlens layout, with :meth:`~CMRxReconKspace.official`
        giving the challenge's ``(kx, ky, kc, kz, t)``.

    Raises
    ------
    KspaceReadError
        If the file is missing, truncated, not a MATLAB file, lacks the
        variable, or the variable is not 4D/5D complex.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> k = np.zeros((6, 8, 2, 3, 4), np.complex64)  # (kx, ky, kc, kz, t)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_cmrxrecon(os.path.join(d, "cine_sax.mat"), {"kspace_sub04": k})
    ...     data = read_cmrxrecon(os.path.join(d, "cine_sax.mat"))
    >>> data.kspace.shape, data.official().shape, data.acceleration, data.kind
    ((4, 3, 2, 6, 8), (6, 8, 2, 3, 4), 4, 'cine')
    """
    p = Path(path)
    name, arr = _mat_array(p, key, _SUB)
    if not np.iscomplexobj(arr):
        raise KspaceReadError(p, f"{name!r} is not complex k-space (dtype {arr.dtype})")
    if arr.ndim == 4:  # single-coil (kx, ky, kz, t)
        arr = arr[:, :, None]
    if arr.ndim != 5:
        raise KspaceReadError(
            p, f"{name!r} must be (kx, ky, kc, kz, t) or (kx, ky, kz, t), got shape {arr.shape}"
        )
    m = _SUB.match(name)
    accel = int(m.group(2)) if m and m.group(2) else None
    ksp = np.ascontiguousarray(np.transpose(arr, (4, 3, 2, 0, 1))).astype(np.complex64)
    return CMRxReconKspace(path=str(p), key=name, kspace=ksp, acceleration=accel, kind=_mat_kind(p))


def read_cmrxrecon_mask(
    path: str | os.PathLike[str], acceleration: int | None = None
) -> np.ndarray:
    """Read a CMRxRecon ``*_mask.mat`` sampling mask as ``(kx, ky)`` booleans.

    Parameters
    ----------
    path : str or os.PathLike
        ``cine_sax_mask.mat`` etc.
    acceleration : int, optional
        4, 8 or 10 selects ``maskNN``; the first ``mask*`` variable if None.

    Returns
    -------
    numpy.ndarray of bool, shape (kx, ky)
        The mask (fixed over coils, slices and frames).

    Raises
    ------
    KspaceReadError
        If the file or the variable is missing or not 2D.
    """
    p = Path(path)
    key = None if acceleration is None else f"mask{int(acceleration):02d}"
    name, arr = _mat_array(p, key, re.compile(r"^mask\d+$"))
    if arr.ndim != 2:
        raise KspaceReadError(p, f"{name!r} must be a 2D (kx, ky) mask, got shape {arr.shape}")
    return np.asarray(arr != 0)


_MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    b"HDF5 schema 1.00 ."
)


def write_cmrxrecon(
    path: str | os.PathLike[str], arrays: Mapping[str, npt.ArrayLike]
) -> None:
    """Write arrays as a MATLAB v7.3 ``.mat`` file the way the challenge files are stored.

    Arrays are given in MATLAB order (``(kx, ky, kc, kz, t)`` k-space,
    ``(kx, ky)`` masks); they are stored with reversed axes, complex values as
    ``(real, imag)`` compounds, a 512-byte MATLAB header and ``MATLAB_class``
    attributes, so MATLAB, h5py and the official loader read them back.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.mat``.
    arrays : Mapping of str to array_like
        Variables to store.

    Raises
    ------
    ImageWriteError
        If the file cannot be written.
    """
    import h5py

    try:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w", userblock_size=512) as f:
                for name, value in arrays.items():
                    a = np.asarray(value)
                    if np.iscomplexobj(a):
                        comp = np.dtype([("real", "<f4"), ("imag", "<f4")])
                        out = np.empty(a.shape, dtype=comp)
                        out["real"], out["imag"] = a.real, a.imag
                        ds = f.create_dataset(name, data=np.transpose(out))
                        ds.attrs["MATLAB_class"] = np.bytes_(b"single")
                    else:
                        cls = b"logical" if a.dtype == bool else b"double"
                        data = a.astype(np.uint8 if a.dtype == bool else np.float64)
                        ds = f.create_dataset(name, data=np.transpose(data))
                        ds.attrs["MATLAB_class"] = np.bytes_(cls)
                        if a.dtype == bool:
                            ds.attrs["MATLAB_int_decode"] = np.int32(1)
            with open(tmp, "r+b") as fh:
                header = _MATLAB_HEADER.ljust(116, b" ")[:116]
                fh.write(header + b"\x00" * 8 + b"\x00\x02" + b"IM")
    except OSError as e:
        raise ImageWriteError(path, str(e)) from None
