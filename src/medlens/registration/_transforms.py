"""Spatial transforms in RAS+ world space (mm).

Direction convention (one for all of medlens, ITK's): a transform maps a point
of the **fixed** image's world space to the corresponding point of the
**moving** image's world space. Resampling the moving image onto the fixed grid
*pulls* moving intensities through it: ``moved(x) = moving(T(x))``.

All transforms here are plain NumPy objects (no torch); the optimisers in
:mod:`medlens.registration` produce them.

2D transforms act on the world ``(x, y)`` plane (the plane of an axial 2D image);
their 3x3 matrices leave ``z`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from medlens.errors import GeometryError, MedlensError
from medlens.image import Image

__all__ = [
    "AffineTransform",
    "CompositeTransform",
    "DisplacementField",
    "Transform",
    "TransformError",
    "VelocityField",
    "compose",
    "euler_angles",
    "jacobian_determinant",
    "rigid_transform",
    "similarity_transform",
    "to_displacement_field",
]

LinearKind = Literal["rigid", "similarity", "affine"]


class TransformError(MedlensError, ValueError):
    """Raised for an invalid transform, or one that cannot do what was asked."""


@runtime_checkable
class Transform(Protocol):
    """Anything that maps fixed-space world points (RAS+ mm) to moving-space ones."""

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions the transform acts on (2 or 3)."""
        ...

    def transform_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map ``(N, 3)`` fixed-space world points to moving-space world points."""
        ...


def _points(points: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], bool]:
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.ndim != 2 or p.shape[1] != 3:
        raise GeometryError(f"expected world points of shape (N, 3) or (3,), got {p.shape}")
    return p, single


# ---------------------------------------------------------------------------
# Linear transforms
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AffineTransform:
    """A linear transform ``y = matrix @ x + translation`` from fixed to moving world space.

    ``x`` is a fixed-space point and ``y`` the moving-space point it corresponds
    to (RAS+ mm); resampling the moving image at ``y`` for every fixed voxel
    centre ``x`` gives the moved image on the fixed grid.

    Parameters
    ----------
    matrix : array_like, shape (3, 3)
        Linear part. For a 2D transform its third row and column are those of
        the identity.
    translation : array_like, shape (3,)
        Translation in mm (``translation[2] == 0`` for 2D).
    ndim : {2, 3}
        Number of spatial dimensions the transform acts on.
    kind : {"rigid", "similarity", "affine"}
        What the transform was built as; informational (the ITK file written is
        an ``AffineTransform`` in every case).

    Examples
    --------
    >>> t = AffineTransform(np.eye(3), [1.0, 2.0, 3.0])
    >>> t.transform_points([[0.0, 0.0, 0.0]]).tolist()
    [[1.0, 2.0, 3.0]]
    >>> t.inverse().transform_points([[1.0, 2.0, 3.0]]).tolist()
    [[0.0, 0.0, 0.0]]
    """

    matrix: npt.NDArray[np.float64]
    translation: npt.NDArray[np.float64]
    ndim: int = 3
    kind: LinearKind = "affine"

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64)
        t = np.array(self.translation, dtype=np.float64).reshape(-1)
        if m.shape == (2, 2):
            m = np.block([[m, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])
        if t.shape == (2,):
            t = np.append(t, 0.0)
        if m.shape != (3, 3) or t.shape != (3,):
            raise TransformError(
                f"an affine transform needs a 3x3 matrix and 3 translations, got shapes "
                f"{m.shape} and {t.shape}"
            )
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(t))):
            raise TransformError("affine transform has non-finite entries")
        if self.ndim not in (2, 3):
            raise TransformError(f"ndim must be 2 or 3, got {self.ndim}")
        if self.ndim == 2 and (
            not np.allclose(m[2], [0, 0, 1]) or not np.allclose(m[:2, 2], 0) or abs(t[2]) > 1e-9
        ):
            raise TransformError("a 2D affine transform must leave the z axis alone")
        m.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls, ndim: int = 3) -> AffineTransform:
        """The identity transform."""
        return cls(np.eye(3), np.zeros(3), ndim=ndim, kind="rigid")

    @classmethod
    def from_homogeneous(
        cls, matrix: npt.ArrayLike, *, ndim: int = 3, kind: LinearKind = "affine"
    ) -> AffineTransform:
        """Build from a 4x4 homogeneous matrix (fixed world -> moving world)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1]):
            raise TransformError(f"expected a 4x4 homogeneous matrix, got {m.shape}")
        return cls(m[:3, :3], m[:3, 3], ndim=ndim, kind=kind)

    @property
    def homogeneous(self) -> npt.NDArray[np.float64]:
        """The 4x4 homogeneous matrix mapping fixed world to moving world."""
        out = np.eye(4)
        out[:3, :3] = self.matrix
        out[:3, 3] = self.translation
        return out

    def transform_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map fixed-space world points ``(N, 3)`` to moving-space world points."""
        p, single = _points(points)
        out = p @ self.matrix.T + self.translation
        return out[0] if single else out

    __call__ = transform_points

    def inverse(self) -> AffineTransform:
        """The inverse, mapping moving-space points back to fixed-space ones.

        Raises
        ------
        TransformError
            If the matrix is singular.
        """
        if abs(np.linalg.det(self.matrix)) < 1e-12:
            raise TransformError(f"cannot invert a singular affine matrix:\n{self.matrix}")
        inv = np.asarray(np.linalg.inv(self.matrix), dtype=np.float64)
        return AffineTransform(inv, -inv @ self.translation, ndim=self.ndim, kind=self.kind)

    def then(self, other: Transform) -> Transform:
        """Apply this transform first, then ``other`` (see :func:`compose`)."""
        return compose(self, other)

    def __repr__(self) -> str:
        m = np.array2string(self.matrix, precision=5, suppress_small=True)
        t = np.array2string(self.translation, precision=4, suppress_small=True)
        return (f"AffineTransform(kind={self.kind!r}, ndim={self.ndim},\n matrix={m},\n"
                f" translation={t})")


def _rotation(angles: Sequence[float], ndim: int) -> npt.NDArray[np.float64]:
    a = [float(v) for v in np.atleast_1d(np.asarray(angles, dtype=np.float64))]
    if ndim == 2:
        if len(a) != 1:
            raise TransformError(f"a 2D rotation takes one angle, got {len(a)}")
        c, s = np.cos(a[0]), np.sin(a[0])
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if len(a) == 1:
        a = [0.0, 0.0, a[0]]
    if len(a) != 3:
        raise TransformError(f"a 3D rotation takes three angles (x, y, z), got {len(a)}")
    cx, sx = np.cos(a[0]), np.sin(a[0])
    cy, sy = np.cos(a[1]), np.sin(a[1])
    cz, sz = np.cos(a[2]), np.sin(a[2])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx, dtype=np.float64)


def _centered(
    linear: npt.NDArray[np.float64],
    translation: Sequence[float],
    center: Sequence[float] | None,
    ndim: int,
    kind: LinearKind,
) -> AffineTransform:
    t = np.zeros(3)
    tt = np.asarray(translation, dtype=np.float64).reshape(-1)
    if tt.shape not in ((ndim,), (3,)):
        raise TransformError(f"translation needs {ndim} values, got {tt.shape[0]}")
    t[: tt.shape[0]] = tt
    c = np.zeros(3)
    if center is not None:
        cc = np.asarray(center, dtype=np.float64).reshape(-1)
        if cc.shape not in ((ndim,), (3,)):
            raise TransformError(f"center needs {ndim} values, got {cc.shape[0]}")
        c[: cc.shape[0]] = cc
    if ndim == 2:
        c[2] = 0.0
        t[2] = 0.0
    return AffineTransform(linear, linear @ (-c) + c + t, ndim=ndim, kind=kind)


def rigid_transform(
    angles: Sequence[float] | float,
    translation: Sequence[float],
    *,
    center: Sequence[float] | None = None,
    degrees: bool = False,
) -> AffineTransform:
    """A rigid (Euler) transform ``y = R (x - c) + c + t``, fixed world -> moving world.

    Parameters
    ----------
    angles : float or sequence of float
        One angle (2D, about the world z axis, counter-clockwise from +x towards
        +y) or three angles ``(ax, ay, az)`` about the world RAS+ x, y and z axes
        (3D); ``R = Rz @ Ry @ Rx``. A single angle in 3D is a rotation about z.
    translation : sequence of float
        ``t`` in mm, 2 or 3 values; its length sets the dimension.
    center : sequence of float, optional
        Centre of rotation ``c`` (RAS+ mm); the origin by default.
    degrees : bool
        Whether the angles are in degrees (radians by default).

    Returns
    -------
    AffineTransform

    Examples
    --------
    >>> t = rigid_transform(90.0, (0.0, 0.0), degrees=True)
    >>> t.transform_points([1.0, 0.0, 0.0]).round(6).tolist()
    [0.0, 1.0, 0.0]
    """
    ndim = len(np.asarray(translation).reshape(-1))
    a = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    if degrees:
        a = np.deg2rad(a)
    return _centered(_rotation(list(a), ndim), translation, center, ndim, "rigid")


def similarity_transform(
    scale: float,
    angles: Sequence[float] | float,
    translation: Sequence[float],
    *,
    center: Sequence[float] | None = None,
    degrees: bool = False,
) -> AffineTransform:
    """A similarity transform ``y = s R (x - c) + c + t``, fixed world -> moving world.

    Parameters are those of :func:`rigid_transform` plus the isotropic ``scale``
    ``s > 0``.

    Examples
    --------
    >>> t = similarity_transform(2.0, 0.0, (1.0, 0.0), center=(1.0, 0.0))
    >>> t.transform_points([2.0, 0.0, 0.0]).tolist()
    [4.0, 0.0, 0.0]
    """
    if not scale > 0:
        raise TransformError(f"scale must be positive, got {scale}")
    ndim = len(np.asarray(translation).reshape(-1))
    a = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    if degrees:
        a = np.deg2rad(a)
    lin = float(scale) * _rotation(list(a), ndim)
    if ndim == 2:
        lin[2, 2] = 1.0
    return _centered(lin, translation, center, ndim, "similarity")


def euler_angles(transform: AffineTransform, *, degrees: bool = False) -> npt.NDArray[np.float64]:
    """Rotation angles of a rigid or similarity transform (inverse of :func:`rigid_transform`).

    The rotation is taken from the polar decomposition of the linear part, so
    a similarity transform's scale is removed first.

    Returns
    -------
    numpy.ndarray
        One angle (2D) or ``(ax, ay, az)`` with ``R = Rz @ Ry @ Rx`` (3D).

    Examples
    --------
    >>> t = rigid_transform((0.1, -0.2, 0.3), (0.0, 0.0, 0.0))
    >>> euler_angles(t).round(6).tolist()
    [0.1, -0.2, 0.3]
    """
    u, _, vt = np.linalg.svd(transform.matrix)
    r = u @ vt
    if transform.ndim == 2:
        return np.array([np.arctan2(r[1, 0], r[0, 0])])
    ay = -np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    ax = np.arctan2(r[2, 1], r[2, 2])
    az = np.arctan2(r[1, 0], r[0, 0])
    out = np.array([ax, ay, az])
    return np.rad2deg(out) if degrees else out


# ---------------------------------------------------------------------------
# Dense fields
# ---------------------------------------------------------------------------


def _check_field_image(image: Image, what: str) -> None:
    if not image.channels or image.n_channels != image.spatial_ndim:
        raise TransformError(
            f"a {what} is a channels-first Image with one channel per spatial axis; got "
            f"{image.n_channels} channel(s) on a {image.spatial_ndim}D grid"
        )
    if image.spatial_ndim == 2:
        normal = image.affine[:3, 2]
        if abs(abs(normal[2]) - 1.0) > 1e-6:
            raise TransformError(f"a 2D {what} must lie in an axial (x, y) plane")


def _sample_vectors(
    image: Image, points: npt.NDArray[np.float64], *, outside_zero: bool = True
) -> npt.NDArray[np.float64]:
    """Linearly interpolate a channels-first vector image at world points -> (N, C)."""
    from scipy import ndimage

    vox = image.world_to_voxel(points)
    shape = np.array(image.spatial_shape)
    out = np.empty((len(points), image.n_channels))
    for c in range(image.n_channels):
        out[:, c] = ndimage.map_coordinates(
            np.asarray(image.array[c], dtype=np.float64), vox.T, order=1, mode="nearest"
        )
    if outside_zero:
        inside = np.all((vox >= -0.5) & (vox <= shape - 0.5), axis=1)
        out[~inside] = 0.0
    return out


def _field_to_world(vectors: npt.NDArray[np.float64], ndim: int) -> npt.NDArray[np.float64]:
    if ndim == 3:
        return vectors
    return np.concatenate([vectors, np.zeros((len(vectors), 1))], axis=1)


@dataclass(frozen=True, eq=False)
class DisplacementField:
    """A dense displacement field: ``y = x + u(x)``, fixed world -> moving world.

    ``u`` is sampled on a grid in fixed space (usually the fixed image's grid)
    and interpolated linearly in between; outside the grid the displacement is
    zero (ITK's ``DisplacementFieldTransform`` does the same).

    Parameters
    ----------
    field : Image
        Channels-first image, one channel per spatial axis, holding the world
        (RAS+ mm) components of ``u``: ``(3, I, J, K)`` for 3D, ``(2, I, J)``
        (x and y components) for a 2D image in an axial plane.

    Examples
    --------
    >>> u = np.zeros((3, 4, 4, 4)); u[0] = 2.0
    >>> d = DisplacementField(Image(u, channels=True))
    >>> d.transform_points([[1.0, 1.0, 1.0]]).tolist()
    [[3.0, 1.0, 1.0]]
    """

    field: Image

    def __post_init__(self) -> None:
        _check_field_image(self.field, "displacement field")

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return self.field.spatial_ndim

    def transform_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map fixed-space world points ``(N, 3)`` to moving-space world points."""
        p, single = _points(points)
        out = p + _field_to_world(_sample_vectors(self.field, p), self.ndim)
        return out[0] if single else out

    __call__ = transform_points

    def then(self, other: Transform) -> Transform:
        """Apply this transform first, then ``other`` (see :func:`compose`)."""
        return compose(self, other)


def _voxel_field(field: Image) -> npt.NDArray[np.float64]:
    """World-mm vector components -> voxel-index components of the field's own grid."""
    n = field.spatial_ndim
    lin = field.affine[:n, :n]
    inv = np.linalg.inv(lin)
    arr = np.asarray(field.array, dtype=np.float64)
    return np.einsum("ij,j...->i...", inv, arr)


def _world_field(vox: npt.NDArray[np.float64], field: Image) -> npt.NDArray[np.float64]:
    n = field.spatial_ndim
    return np.einsum("ij,j...->i...", field.affine[:n, :n], vox)


def _compose_voxel(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> np.ndarray:
    """Voxel displacement of x -> (x + b(x)) + a(x + b(x)) on one grid."""
    from scipy import ndimage

    n = a.shape[0]
    grid = np.indices(a.shape[1:], dtype=np.float64)
    coords = grid + b
    out = np.empty_like(a)
    for c in range(n):
        out[c] = ndimage.map_coordinates(a[c], coords, order=1, mode="nearest")
    return b + out


@dataclass(frozen=True, eq=False)
class VelocityField:
    """A stationary velocity field ``v``; its exponential is a diffeomorphic displacement.

    The transform (fixed world -> moving world) is ``y = exp(v)(x)``, the flow of
    ``v`` for unit time, integrated by scaling and squaring with ``steps``
    squarings (``v / 2**steps`` is composed with itself ``steps`` times).

    Parameters
    ----------
    field : Image
        Channels-first vector image of velocities (RAS+ mm per unit time), laid
        out like :class:`DisplacementField`'s.
    steps : int
        Number of squarings.

    Examples
    --------
    >>> v = np.zeros((3, 6, 6, 6)); v[1] = 1.5
    >>> d = VelocityField(Image(v, channels=True)).exponential()
    >>> bool(np.allclose(d.field.array[1], 1.5))
    True
    """

    field: Image
    steps: int = 7

    def __post_init__(self) -> None:
        _check_field_image(self.field, "velocity field")
        if self.steps < 0:
            raise TransformError(f"steps must be >= 0, got {self.steps}")

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return self.field.spatial_ndim

    def exponential(self) -> DisplacementField:
        """Integrate by scaling and squaring into a :class:`DisplacementField`."""
        u = _voxel_field(self.field) / (2.0**self.steps)
        for _ in range(self.steps):
            u = _compose_voxel(u, u)
        return DisplacementField(self.field.with_array(_world_field(u, self.field)))

    def inverse(self) -> VelocityField:
        """The inverse transform (moving -> fixed): the negated velocity."""
        return VelocityField(self.field.with_array(-np.asarray(self.field.array)), self.steps)

    def transform_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map fixed-space world points to moving-space world points."""
        return self.exponential().transform_points(points)

    __call__ = transform_points

    def then(self, other: Transform) -> Transform:
        """Apply this transform first, then ``other`` (see :func:`compose`)."""
        return compose(self, other)


# ---------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CompositeTransform:
    """Transforms applied one after the other: ``y = t_n(...t_2(t_1(x)))``.

    ``transforms[0]`` acts first on the fixed-space point; the last one yields
    the moving-space point. (ITK's ``CompositeTransform`` stores the same chain
    in the opposite order; the ITK writer reverses it.)
    """

    transforms: tuple[Transform, ...] = field(default_factory=tuple)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return self.transforms[0].ndim if self.transforms else 3

    def transform_points(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map fixed-space world points to moving-space world points."""
        p, single = _points(points)
        for t in self.transforms:
            p = np.atleast_2d(t.transform_points(p))
        return p[0] if single else p

    __call__ = transform_points

    def then(self, other: Transform) -> Transform:
        """Apply this transform first, then ``other`` (see :func:`compose`)."""
        return compose(self, other)


def compose(*transforms: Transform) -> Transform:
    """Chain transforms: ``compose(a, b)`` maps ``x`` to ``b(a(x))``.

    Read it as "first ``a``, then ``b``": with the fixed -> moving convention,
    ``a`` maps fixed space to an intermediate space and ``b`` maps that to
    moving space. Adjacent linear transforms are multiplied out; nested
    composites are flattened.

    Examples
    --------
    >>> a = rigid_transform(0.0, (1.0, 0.0, 0.0))
    >>> b = similarity_transform(2.0, 0.0, (0.0, 0.0, 0.0))
    >>> compose(a, b).transform_points([0.0, 0.0, 0.0]).tolist()
    [2.0, 0.0, 0.0]
    """
    flat: list[Transform] = []
    for t in transforms:
        if not isinstance(t, Transform):
            raise TransformError(f"not a transform: {t!r}")
        parts = t.transforms if isinstance(t, CompositeTransform) else (t,)
        for p in parts:
            if flat and isinstance(p, AffineTransform) and isinstance(flat[-1], AffineTransform):
                prev = flat.pop()
                assert isinstance(prev, AffineTransform)
                kinds = {prev.kind, p.kind}
                kind: LinearKind = (
                    "affine" if "affine" in kinds else
                    "similarity" if "similarity" in kinds else "rigid"
                )
                flat.append(
                    AffineTransform.from_homogeneous(
                        p.homogeneous @ prev.homogeneous, ndim=max(p.ndim, prev.ndim), kind=kind
                    )
                )
            else:
                flat.append(p)
    if not flat:
        raise TransformError("compose() needs at least one transform")
    ndims = {t.ndim for t in flat}
    if len(ndims) > 1:
        raise TransformError(f"cannot compose transforms of different dimensions {sorted(ndims)}")
    return flat[0] if len(flat) == 1 else CompositeTransform(tuple(flat))


def _grid_points(like: Image) -> npt.NDArray[np.float64]:
    """World coordinates ``(N, 3)`` of every voxel centre, C order (built by broadcasting)."""
    n = like.spatial_ndim
    shape = like.spatial_shape
    out = np.broadcast_to(like.affine[:3, 3], (*shape, 3)).copy()
    for a in range(n):
        idx = np.arange(shape[a], dtype=np.float64).reshape(
            [-1 if b == a else 1 for b in range(n)] + [1])
        out += idx * like.affine[:3, a]
    return out.reshape(-1, 3)


def to_displacement_field(transform: Transform, like: Image) -> DisplacementField:
    """Sample any transform as a displacement field ``u(x) = T(x) - x`` on ``like``'s grid.

    Parameters
    ----------
    transform : Transform
        Fixed world -> moving world.
    like : Image
        The fixed-space grid to sample on (its values are ignored).

    Examples
    --------
    >>> grid = Image(np.zeros((3, 3, 3)))
    >>> d = to_displacement_field(rigid_transform(0.0, (0.0, 2.0, 0.0)), grid)
    >>> d.field.array.shape, float(d.field.array[1].mean())
    ((3, 3, 3, 3), 2.0)
    """
    if isinstance(transform, VelocityField) and like.same_grid(transform.field):
        return transform.exponential()
    pts = _grid_points(like)
    u = transform.transform_points(pts) - pts
    n = like.spatial_ndim
    if n == 2 and np.abs(u[:, 2]).max(initial=0.0) > 1e-6:
        raise TransformError("the transform moves points out of the 2D image's plane")
    arr = u[:, :n].T.reshape((n, *like.spatial_shape))
    return DisplacementField(Image(arr.astype(np.float64), like.affine, channels=True))


def jacobian_determinant(transform: Transform, like: Image | None = None) -> Image:
    """Determinant of the Jacobian of ``x -> T(x)`` at every voxel of a grid.

    Values above 1 mean the fixed-space neighbourhood maps to a larger moving
    region; values <= 0 mean folding. The transform is sampled as a
    displacement field on the grid and handed to
    :func:`medlens.metrics.jacobian_determinant` (central differences in mm,
    one-sided at the border).

    Parameters
    ----------
    transform : Transform
        Fixed world -> moving world.
    like : Image, optional
        Grid on which to evaluate; a displacement or velocity field's own grid
        by default.

    Returns
    -------
    Image
        float64 determinant map on the grid.

    Examples
    --------
    >>> grid = Image(np.zeros((4, 4, 4)), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> t = similarity_transform(1.1, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    >>> round(float(jacobian_determinant(t, grid).array.mean()), 6)
    1.331
    """
    if like is None:
        if isinstance(transform, DisplacementField | VelocityField):
            like = transform.field
        else:
            raise TransformError("give like= (the grid) for a transform without its own grid")
    from medlens.metrics import jacobian_determinant as _metrics_jacobian

    disp = to_displacement_field(transform, like)
    n = like.spatial_ndim
    det = _metrics_jacobian(np.asarray(disp.field.array, dtype=np.float64), spacing=like.spacing,
                            direction=like.direction[:n, :n])
    return like.with_array(det.astype(np.float64), channels=False)
