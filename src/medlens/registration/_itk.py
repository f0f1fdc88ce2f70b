"""Reading and writing ITK transform files and displacement-field images.

ITK transform files (``.tfm``, ``.txt``, ``.h5``) hold LPS+ transforms with
ITK's direction convention, which is medlens's too: fixed-space point ->
moving-space point. Only the LPS/RAS flip (through :mod:`medlens.io`'s one
conversion pair) differs, so ``sitk.ReadTransform`` and 3D Slicer read the
files medlens writes with the same meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlens.image import Image
from medlens.io._lps import LPS_RAS_FLIP
from medlens.registration._transforms import (
    AffineTransform,
    CompositeTransform,
    DisplacementField,
    Transform,
    TransformError,
    VelocityField,
)

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = [
    "from_sitk_transform",
    "read_displacement_field",
    "read_transform",
    "to_sitk_transform",
    "write_displacement_field",
    "write_transform",
]

_F3 = LPS_RAS_FLIP[:3, :3]


def _flip_vectors(arr: np.ndarray, ndim: int) -> np.ndarray:
    """Flip x and y components of channels-first vectors (LPS <-> RAS)."""
    sign = np.diag(_F3)[:ndim].reshape((ndim,) + (1,) * (arr.ndim - 1))
    return np.asarray(arr * sign)


def _affine_to_sitk(t: AffineTransform) -> sitk.Transform:
    import SimpleITK as sitk

    n = t.ndim
    m = _F3 @ t.matrix @ _F3
    v = _F3 @ t.translation
    out = sitk.AffineTransform(n)
    out.SetMatrix([float(x) for x in m[:n, :n].ravel()])
    out.SetTranslation([float(x) for x in v[:n]])
    out.SetCenter([0.0] * n)
    return out


def _field_to_sitk(d: DisplacementField) -> sitk.Transform:
    import SimpleITK as sitk

    from medlens.io import to_sitk

    n = d.ndim
    lps = Image(_flip_vectors(np.asarray(d.field.array, np.float64), n), d.field.affine,
                channels=True)
    img = sitk.Cast(to_sitk(lps), sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(img)


def to_sitk_transform(transform: Transform) -> sitk.Transform:
    """Convert a medlens transform to a SimpleITK transform with the same meaning.

    Both map fixed-space points to moving-space points; SimpleITK's are in LPS+.
    A velocity field is exponentiated first; a composite becomes an ITK
    ``CompositeTransform`` (whose stack order is the reverse of medlens's).

    Examples
    --------
    >>> import numpy as np
    >>> from medlens.registration import rigid_transform
    >>> t = rigid_transform(0.0, (1.0, 2.0, 3.0))
    >>> to_sitk_transform(t).TransformPoint((0.0, 0.0, 0.0))
    (-1.0, -2.0, 3.0)
    """
    import SimpleITK as sitk

    if isinstance(transform, AffineTransform):
        return _affine_to_sitk(transform)
    if isinstance(transform, VelocityField):
        return _field_to_sitk(transform.exponential())
    if isinstance(transform, DisplacementField):
        return _field_to_sitk(transform)
    if isinstance(transform, CompositeTransform):
        comp = sitk.CompositeTransform(transform.ndim)
        # ITK applies the last-added transform first.
        for t in reversed(transform.transforms):
            comp.AddTransform(to_sitk_transform(t))
        return comp
    raise TransformError(f"cannot convert {type(transform).__name__} to an ITK transform")


def _linear_from_sitk(tx: sitk.Transform, n: int) -> AffineTransform:
    # Any linear ITK transform (Euler, Versor, Similarity, Affine, Translation,
    # ScaleSkew...): read its action on the origin and the unit vectors.
    o = np.array(tx.TransformPoint([0.0] * n))
    cols = [np.array(tx.TransformPoint([1.0 if i == j else 0.0 for j in range(n)])) - o
            for i in range(n)]
    m = np.eye(3)
    m[:n, :n] = np.stack(cols, axis=1)
    t = np.zeros(3)
    t[:n] = o
    name = tx.GetName()
    kind = "rigid" if ("Euler" in name or "Versor" in name or "Rigid" in name
                       or "Translation" in name) else ("similarity" if "Similarity" in name
                                                       else "affine")
    return AffineTransform(_F3 @ m @ _F3, _F3 @ t, ndim=n, kind=kind)  # type: ignore[arg-type]


def from_sitk_transform(tx: sitk.Transform) -> Transform:
    """Convert a SimpleITK transform (LPS+) to a medlens transform (RAS+), same direction.

    Linear transforms of every ITK type become :class:`AffineTransform`;
    displacement fields become :class:`DisplacementField`; composites become
    :class:`CompositeTransform`.

    Raises
    ------
    TransformError
        For transform types medlens does not represent (B-spline free-form
        deformations, for example).
    """
    import SimpleITK as sitk

    n = tx.GetDimension()
    name = tx.GetName()
    if name == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        parts = [comp.GetNthTransform(i) for i in range(comp.GetNumberOfTransforms())]
        chain = [from_sitk_transform(p) for p in reversed(parts)]
        return chain[0] if len(chain) == 1 else CompositeTransform(tuple(chain))
    if name == "DisplacementFieldTransform":
        from medlens.io import from_sitk

        img = sitk.DisplacementFieldTransform(tx).GetDisplacementField()
        f = from_sitk(img)
        return DisplacementField(f.with_array(_flip_vectors(np.asarray(f.array, np.float64), n)))
    if tx.IsLinear():
        return _linear_from_sitk(tx, n)
    raise TransformError(f"ITK transform type {name} is not supported by medlens")


def write_transform(transform: Transform, path: str | Path) -> Path:
    """Write a transform as an ITK transform file (``.tfm``, ``.txt`` or ``.h5``).

    The file holds the fixed -> moving transform in LPS+, exactly what
    ``sitk.ReadTransform`` and 3D Slicer expect, so ``sitk.Resample(moving,
    fixed, sitk.ReadTransform(path))`` reproduces :func:`warp_image`.
    Displacement fields and composites containing them need ``.h5``.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TransformError
        For an unknown suffix, or a dense field with a text suffix.
    """
    import SimpleITK as sitk

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
        raise TransformError(f"{p}: ITK transform files end in .tfm, .txt, .h5 or .mat")
    linear = isinstance(transform, AffineTransform)
    if not linear and suffix not in (".h5", ".hdf5"):
        raise TransformError(f"{p}: a dense or composite transform must be written as .h5")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.tmp{p.suffix}")
    sitk.WriteTransform(to_sitk_transform(transform), str(tmp))
    tmp.replace(p)
    return p


def read_transform(path: str | Path) -> Transform:
    """Read an ITK transform file written by medlens, SimpleITK, elastix-to-ITK or Slicer.

    The file's transform maps fixed-space points to moving-space points (ITK's
    convention); so does the returned medlens transform, in RAS+ mm.

    Raises
    ------
    TransformError
        If the file cannot be read or holds an unsupported transform type.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise TransformError(f"{p}: no such transform file")
    try:
        tx = sitk.ReadTransform(str(p))
    except RuntimeError as e:
        raise TransformError(f"{p}: not a readable ITK transform file ({e})") from e
    return from_sitk_transform(tx)


def write_displacement_field(field: DisplacementField | VelocityField, path: str | Path) -> Path:
    """Write a displacement field as a vector NIfTI (or any ITK image format).

    The file follows the ITK / ANTs convention for displacement-field images:
    a vector image on the fixed grid whose components are LPS+ mm displacements
    (``x -> x + u(x)``, fixed -> moving), so
    ``sitk.DisplacementFieldTransform(sitk.ReadImage(path))`` is the same
    transform. A velocity field is exponentiated first.
    """
    import SimpleITK as sitk

    from medlens.io import to_sitk

    d = field.exponential() if isinstance(field, VelocityField) else field
    n = d.ndim
    lps = Image(_flip_vectors(np.asarray(d.field.array, np.float64), n), d.field.affine,
                channels=True)
    img = sitk.Cast(to_sitk(lps), sitk.sitkVectorFloat32)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    name = p.name
    tmp = p.with_name(".tmp-" + name)
    sitk.WriteImage(img, str(tmp))
    tmp.replace(p)
    return p


def read_displacement_field(path: str | Path) -> DisplacementField:
    """Read a displacement-field image written by :func:`write_displacement_field` or ITK/ANTs."""
    import SimpleITK as sitk

    from medlens.io import from_sitk

    p = Path(path)
    if not p.is_file():
        raise TransformError(f"{p}: no such displacement-field file")
    img = sitk.ReadImage(str(p))
    n = img.GetDimension()
    if img.GetNumberOfComponentsPerPixel() != n:
        raise TransformError(
            f"{p}: a displacement field needs {n} components per voxel, "
            f"got {img.GetNumberOfComponentsPerPixel()}"
        )
    f = from_sitk(img)
    arr: Any = _flip_vectors(np.asarray(f.array, np.float64), n)
    return DisplacementField(f.with_array(arr))
