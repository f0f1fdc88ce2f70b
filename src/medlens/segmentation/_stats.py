"""Per-structure statistics of a label map: volume, intensities, centroid, extent.

``medlens seg stats MASK [IMAGE]`` prints these as JSON and CSV; the CT
intensities are HU when the image is CT (the reader applies rescale slope and
intercept).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass

import numpy as np

from medlens.errors import GeometryError
from medlens.image import Image

__all__ = ["StructureStats", "axial_diameters", "mask_statistics", "stats_to_csv"]


@dataclass(frozen=True)
class StructureStats:
    """Statistics of one label.

    Attributes
    ----------
    label : int
        Label value.
    name : str
        Label name (``"label_<value>"`` when none is known).
    voxel_count : int
    volume_ml : float
        Voxel count times voxel volume, in ml.
    centroid_mm : tuple of float
        Mean world position (RAS+ mm) of the label's voxel centres.
    bbox_start, bbox_stop : tuple of int
        Voxel box ``[start, stop)`` per array axis.
    longest_axial_diameter_mm : float
        RECIST-like: on every axial slice (the array axis closest to S), the
        largest distance between two voxel centres of the label; the maximum
        over slices. ``nan`` for 2D masks.
    short_axis_mm : float
        On that slice, the label's extent perpendicular to the long diameter
        (between voxel centres).
    axial_slice : int
        Index (along the axial array axis) of that slice; -1 if none.
    mean, std, min, max : float
        Image intensities inside the label (``nan`` without an image).
    """

    label: int
    name: str
    voxel_count: int
    volume_ml: float
    centroid_mm: tuple[float, ...]
    bbox_start: tuple[int, ...]
    bbox_stop: tuple[int, ...]
    longest_axial_diameter_mm: float
    short_axis_mm: float
    axial_slice: int
    mean: float
    std: float
    min: float
    max: float


def axial_diameters(points_mm: np.ndarray) -> tuple[float, float]:
    """Longest diameter and the extent perpendicular to it of 2D points (mm).

    Examples
    --------
    >>> pts = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
    >>> axial_diameters(pts)
    (4.0, 2.0)
    """
    p = np.unique(np.asarray(points_mm, dtype=np.float64), axis=0)
    if len(p) < 2:
        return 0.0, 0.0
    cand = p
    if len(p) > 3:
        try:
            from scipy.spatial import ConvexHull, QhullError

            cand = p[ConvexHull(p).vertices]
        except (QhullError, ValueError):  # collinear points
            cand = p
    diff = cand[:, None, :] - cand[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    long = float(dist[i, j])
    u = (cand[j] - cand[i]) / long
    perp = np.array([-u[1], u[0]])
    proj = p @ perp
    return long, float(proj.max() - proj.min())


def _axial_axis(image: Image) -> int:
    d = image.direction
    return int(np.argmax(np.abs(d[2, : image.spatial_ndim])))


def mask_statistics(
    mask: Image,
    image: Image | None = None,
    *,
    names: dict[int, str] | None = None,
) -> list[StructureStats]:
    """Statistics of every non-zero label of a mask.

    Parameters
    ----------
    mask : Image
        Integer label map.
    image : Image, optional
        Intensity image on the same grid.
    names : dict, optional
        Label value -> name.

    Returns
    -------
    list of StructureStats
        One per label present, in increasing label order.

    Raises
    ------
    GeometryError
        If the image is not on the mask's grid.

    Examples
    --------
    >>> m = np.zeros((4, 4, 2), np.uint8); m[1:3, 1:3, 0] = 1
    >>> s = mask_statistics(Image(m, np.diag([2.0, 2.0, 5.0, 1.0])))[0]
    >>> s.voxel_count, s.volume_ml, s.centroid_mm, s.longest_axial_diameter_mm
    (4, 0.08, (3.0, 3.0, 0.0), 2.8284271247461903)
    """
    lab = np.asarray(mask.array)
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == np.bool_):
        if not np.all(np.equal(np.mod(lab, 1), 0)):
            raise GeometryError(f"mask must hold integer labels, got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
    img = None
    if image is not None:
        if image.spatial_shape != mask.spatial_shape or not np.allclose(
            image.affine, mask.affine, atol=1e-3
        ):
            raise GeometryError(
                f"image grid {image.spatial_shape} does not match the mask grid "
                f"{mask.spatial_shape}"
            )
        img = np.asarray(image.array, dtype=np.float64)
        if image.channels:
            img = img[0]
    voxel_ml = float(np.prod(mask.spacing)) / 1000.0
    out = []
    ax = _axial_axis(mask) if mask.spatial_ndim == 3 else -1
    for v in sorted(int(x) for x in np.unique(lab) if x != 0):
        m = lab == v
        idx = np.argwhere(m)
        world = mask.voxel_to_world(idx)
        start = tuple(int(i) for i in idx.min(0))
        stop = tuple(int(i) + 1 for i in idx.max(0))
        long = short = float("nan")
        best_slice = -1
        if ax >= 0:
            long, short = 0.0, 0.0
            inplane = [a for a in range(3) if a != 2]
            for s in np.unique(idx[:, ax]):
                sel = idx[:, ax] == s
                pts = world[sel][:, inplane]
                ld, sd = axial_diameters(pts)
                if ld > long:
                    long, short, best_slice = ld, sd, int(s)
        if img is not None:
            vals = img[m]
            mean, std, mn, mx = (
                float(vals.mean()),
                float(vals.std()),
                float(vals.min()),
                float(vals.max()),
            )
        else:
            mean = std = mn = mx = math.nan
        out.append(
            StructureStats(
                label=v,
                name=(names or {}).get(v, f"label_{v}"),
                voxel_count=int(m.sum()),
                volume_ml=float(m.sum() * voxel_ml),
                centroid_mm=tuple(float(c) for c in world.mean(0)),
                bbox_start=start,
                bbox_stop=stop,
                longest_axial_diameter_mm=long,
                short_axis_mm=short,
                axial_slice=best_slice,
                mean=mean,
                std=std,
                min=mn,
                max=mx,
            )
        )
    return out


def stats_to_csv(stats: list[StructureStats]) -> str:
    """CSV text, one row per structure."""
    buf = io.StringIO()
    fields = (
        list(asdict(stats[0]).keys()) if stats else [f for f in StructureStats.__dataclass_fields__]
    )
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for s in stats:
        row = asdict(s)
        for k in ("centroid_mm", "bbox_start", "bbox_stop"):
            row[k] = " ".join(f"{x:g}" for x in row[k])
        w.writerow(row)
    return buf.getvalue()
