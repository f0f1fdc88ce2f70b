"""``phantom-kidney``: procedural CT-like abdominal volumes with KiTS-style labels.

Each case is drawn from its own random stream ``SeedSequence([seed, index])``,
so case ``k`` is the same whatever the number of cases asked for. The anatomy is
a deliberately simple caricature: an elliptical body (skin-fat layer, soft
tissue), a vertebral column with discs, paraspinal muscles, aorta and IVC, two
kidneys with contrast-enhanced cortex, medulla and sinus fat inside perirenal
fat, and renal tumours and cysts; then partial-volume blur and Gaussian noise.
Values are Hounsfield units (int16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.datasets._build import BuildContext
from medlens.datasets._types import DatasetCard, SourcePackage
from medlens.image import Image

__all__ = [
    "DEFAULT_N_CASES",
    "DEFAULT_SEED",
    "PHANTOM_KIDNEY",
    "KidneyPhantom",
    "build_phantom_kidney",
    "kidney_phantom",
]

DEFAULT_N_CASES = 10
DEFAULT_SEED = 0
DEFAULT_SHAPE = (160, 160, 64)
DEFAULT_SPACING = (0.8, 0.8, 3.0)
LABELS = {0: "background", 1: "kidney", 2: "tumor", 3: "cyst"}


@dataclass(frozen=True)
class KidneyPhantom:
    """One generated case.

    Attributes
    ----------
    image : Image
        CT-like volume in HU (int16), LPS-oriented like a DICOM CT series.
    label : Image
        uint8 labels on the same grid: 0 background, 1 kidney, 2 tumour, 3 cyst.
    params : Mapping[str, Any]
        The sampled parameters (sizes in mm, HU values, counts, noise SD).
    """

    image: Image
    label: Image
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def _rotation(rng: np.random.Generator, max_deg: Sequence[float]) -> npt.NDArray[np.float64]:
    ax, ay, az = (np.deg2rad(rng.uniform(-m, m)) for m in max_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out: npt.NDArray[np.float64] = rz @ ry @ rx
    return out


class _Grid:
    """World coordinates (RAS mm) of every voxel, as broadcastable 1D axes."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]):
        self.shape = shape
        # LPS orientation: i runs to patient left (-x), j to posterior (-y), k superior
        self.affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
        self.affine[:3, 3] = -self.affine[:3, :3] @ centre
        self.x = (self.affine[0, 0] * np.arange(shape[0]) + self.affine[0, 3])[:, None, None]
        self.y = (self.affine[1, 1] * np.arange(shape[1]) + self.affine[1, 3])[None, :, None]
        self.z = (self.affine[2, 2] * np.arange(shape[2]) + self.affine[2, 3])[None, None, :]
        self.spacing = spacing

    def ellipsoid(self, centre: npt.ArrayLike, axes: npt.ArrayLike,
                  rot: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.bool_]:
        """Boolean mask of an (optionally rotated) ellipsoid, evaluated in its bounding box."""
        c = np.asarray(centre, dtype=np.float64)
        a = np.asarray(axes, dtype=np.float64)
        r = np.eye(3) if rot is None else rot
        half = np.abs(r) @ a  # half extent of the rotated box along each world axis
        out = np.zeros(self.shape, dtype=bool)
        sl = []
        for d, coord in enumerate((self.x.ravel(), self.y.ravel(), self.z.ravel())):
            inside = np.nonzero(np.abs(coord - c[d]) <= half[d] + self.spacing[d])[0]
            if inside.size == 0:
                return out
            sl.append(slice(int(inside.min()), int(inside.max()) + 1))
        dx = self.x[sl[0]] - c[0]
        dy = self.y[:, sl[1]] - c[1]
        dz = self.z[:, :, sl[2]] - c[2]
        # local coordinates u = R^T d, then sum (u / a)^2 <= 1
        acc = np.zeros((dx.shape[0], dy.shape[1], dz.shape[2]))
        for k in range(3):
            u = r[0, k] * dx + r[1, k] * dy + r[2, k] * dz
            acc += (u / a[k]) ** 2
        out[sl[0], sl[1], sl[2]] = acc <= 1.0
        return out


def kidney_phantom(
    index: int = 0,
    *,
    seed: int = DEFAULT_SEED,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
) -> KidneyPhantom:
    """Generate one CT-like abdominal phantom with kidney, tumour and cyst labels.

    Parameters
    ----------
    index : int, optional
        Case number; with ``seed`` it fixes the random stream.
    seed : int, optional
        Dataset seed.
    shape : tuple of int, optional
        Array shape ``(I, J, K)``; default 160x160x64.
    spacing : tuple of float, optional
        Voxel size in mm; default (0.8, 0.8, 3.0). Anatomy is defined in mm, so
        other grids show the same body.

    Returns
    -------
    KidneyPhantom
        Image (HU, int16), label (uint8; 1 kidney, 2 tumour, 3 cyst as in KiTS)
        and the sampled parameters. Deterministic for given arguments.

    Examples
    --------
    >>> case = kidney_phantom(0, seed=0, shape=(64, 64, 16), spacing=(2.0, 2.0, 8.0))
    >>> case.image.spatial_shape, case.image.orientation, case.label.array.dtype.name
    ((64, 64, 16), 'LPS', 'uint8')
    >>> sorted(int(v) for v in np.unique(case.label.array))[:3]
    [0, 1, 2]
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    g = _Grid(shape, spacing)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    p: dict[str, Any] = {"seed": int(seed), "index": int(index)}

    # body: elliptic cylinder, radius slowly varying along z
    a_body, b_body = rng.uniform(52, 60), rng.uniform(40, 47)
    wobble = 1.0 + 0.03 * np.sin(g.z / rng.uniform(40, 80) + rng.uniform(0, 2 * np.pi))
    body = (g.x / (a_body * wobble)) ** 2 + ((g.y - 2.0) / (b_body * wobble)) ** 2 <= 1.0
    fat_mm = rng.uniform(4, 8)
    inner = (g.x / (a_body * wobble - fat_mm)) ** 2 + (
        (g.y - 2.0) / (b_body * wobble - fat_mm)) ** 2 <= 1.0
    hu[body] = rng.uniform(-110, -90)
    hu[inner] = rng.uniform(35, 50)
    p.update(body_axes_mm=(round(a_body, 2), round(b_body, 2)), fat_mm=round(fat_mm, 2))

    # spine: vertebral bodies with discs, posterior elements, paraspinal muscles
    r_vert = rng.uniform(9, 11.5)
    y_spine = 2.0 - (b_body - fat_mm) + r_vert + rng.uniform(15, 18)
    period, phase = rng.uniform(24, 30), rng.uniform(0, 30)
    disc = ((g.z - phase) % period) < 5.0
    column = (g.x ** 2 + (g.y - y_spine) ** 2) <= r_vert ** 2
    cancellous = (g.x ** 2 + (g.y - y_spine) ** 2) <= (r_vert - 2.0) ** 2
    posterior = (g.x / 6.0) ** 2 + ((g.y - (y_spine - r_vert - 6.0)) / 7.0) ** 2 <= 1.0
    for side in (-1.0, 1.0):
        muscle = ((g.x - side * 17.0) / 9.0) ** 2 + ((g.y - (y_spine - 8.0)) / 10.0) ** 2 <= 1.0
        hu[muscle & inner] = rng.uniform(50, 60)
    hu[np.broadcast_to(column, shape) & ~disc] = rng.uniform(600, 800)
    hu[np.broadcast_to(cancellous, shape) & ~disc] = rng.uniform(180, 280)
    hu[np.broadcast_to(column, shape) & disc] = rng.uniform(70, 90)
    hu[np.broadcast_to(posterior, shape) & ~disc] = rng.uniform(300, 450)
    # great vessels in front of the spine: aorta (patient left, -x), IVC (right, +x)
    y_vessel = y_spine + r_vert + 6.0
    aorta = ((g.x + 6.0) ** 2 + (g.y - y_vessel) ** 2) <= rng.uniform(5, 6.5) ** 2
    ivc = ((g.x - 9.0) ** 2 + (g.y - y_vessel + 1.0) ** 2) <= rng.uniform(5, 7) ** 2
    hu[np.broadcast_to(aorta, shape)] = rng.uniform(160, 220)
    hu[np.broadcast_to(ivc, shape)] = rng.uniform(100, 140)
    # bowel gas pockets in the anterior abdomen
    for _ in range(int(rng.integers(1, 4))):
        gas_c = (rng.uniform(-30, 30), rng.uniform(8, 28), rng.uniform(-70, 70))
        gas = g.ellipsoid(gas_c, rng.uniform(4, 10, size=3)) & inner
        hu[gas] = rng.uniform(-950, -850)

    # kidneys: perirenal fat, cortex, medulla, sinus fat
    kidneys = []
    z_left = rng.uniform(-15, 15)
    for side, dz in ((-1.0, 0.0), (1.0, -rng.uniform(5, 15))):  # right kidney sits lower
        centre = np.array([side * rng.uniform(27, 33), y_spine + rng.uniform(-2, 5), z_left + dz])
        axes = np.array([rng.uniform(10.5, 13.5), rng.uniform(13, 16.5), rng.uniform(32, 42)])
        rot = _rotation(rng, (8.0, 10.0, 25.0))
        kidneys.append((centre, axes, rot))
        hu[g.ellipsoid(centre, axes + 5.0, rot) & inner] = rng.uniform(-100, -80)
    cortex_hu = rng.uniform(150, 200)
    medulla_hu = rng.uniform(80, 120)
    for side, (centre, axes, rot) in zip((-1.0, 1.0), kidneys, strict=True):
        kidney = g.ellipsoid(centre, axes, rot)
        medulla = g.ellipsoid(centre, axes - rng.uniform(3.5, 5.5), rot)
        sinus_c = centre + rot @ np.array([-side * 0.55 * axes[0], 0.2 * axes[1], 0.0])
        sinus = g.ellipsoid(sinus_c, axes * np.array([0.45, 0.4, 0.45]), rot)
        hu[kidney] = cortex_hu
        hu[medulla] = medulla_hu
        hu[sinus & kidney] = rng.uniform(-70, -30)
        label[kidney & ~sinus] = 1
    p.update(cortex_hu=round(cortex_hu, 1), medulla_hu=round(medulla_hu, 1),
             kidney_axes_mm=[tuple(np.round(k[1], 2).tolist()) for k in kidneys])

    def on_kidney(depth: tuple[float, float]) -> tuple[npt.NDArray[np.float64], int]:
        which = int(rng.integers(0, 2))
        centre, axes, rot = kidneys[which]
        u = rng.normal(size=3)
        u[2] *= 0.6
        u /= np.linalg.norm(u)
        return centre + rot @ (axes * u * rng.uniform(*depth)), which

    tumours = []
    for _ in range(int(rng.choice([1, 1, 1, 2]))):
        c, which = on_kidney((0.5, 1.0))
        r = rng.uniform(5, 15)
        axes_t = r * rng.uniform(0.8, 1.2, size=3)
        rot_t = _rotation(rng, (30.0, 30.0, 30.0))
        tumour = g.ellipsoid(c, axes_t, rot_t)
        hu[tumour] = rng.uniform(90, 140)
        if r > 10:  # necrotic core
            hu[g.ellipsoid(c, axes_t * rng.uniform(0.3, 0.55), rot_t)] = rng.uniform(25, 50)
        label[tumour] = 2
        tumours.append({"kidney": which, "radius_mm": round(r, 2)})
    cysts = []
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        c, which = on_kidney((0.3, 1.0))
        r = rng.uniform(3, 9)
        cyst = g.ellipsoid(c, (r, r, r)) & (label != 2)
        hu[cyst] = rng.uniform(0, 15)
        label[cyst] = 3
        cysts.append({"kidney": which, "radius_mm": round(r, 2)})
    p.update(tumours=tumours, cysts=cysts)

    # partial-volume blur (mostly in-plane; slices are thick) and quantum noise
    from scipy.ndimage import gaussian_filter

    hu = gaussian_filter(hu, sigma=(0.7, 0.7, 0.3), mode="nearest")
    noise_sd = rng.uniform(10, 20)
    hu += noise_sd * rng.standard_normal(shape, dtype=np.float32)
    p["noise_sd_hu"] = round(noise_sd, 2)
    image = Image(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), g.affine,
                  meta={"modality": "CT", "synthetic": True})
    return KidneyPhantom(image=image, label=Image(label, g.affine), params=p)


PHANTOM_KIDNEY = DatasetCard(
    name="phantom-kidney",
    title="SYNTHETIC CT-like abdominal phantoms with kidney / tumour / cyst labels (KiTS "
          "convention)",
    description=(
        "Procedurally generated, NOT real patients. Each volume (default 160x160x64 voxels "
        "of 0.8x0.8x3 mm, LPS like a DICOM CT series, int16 HU) shows an elliptical body "
        "with a subcutaneous fat layer, soft tissue, a vertebral column with discs, "
        "paraspinal muscles, aorta and IVC, bowel gas, and two kidneys (enhancing cortex, "
        "medulla, sinus fat, perirenal fat), with one or two renal tumours (some with a "
        "necrotic core) and zero to two cysts; then partial-volume blur and Gaussian noise "
        "(SD 10-20 HU). Labels follow KiTS: 1 kidney, 2 tumour, 3 cyst. Case k is drawn from "
        "SeedSequence([seed, k]), so it is the same for any n_cases > k; the last n_test "
        "cases have role test. Generate any number with fetch('phantom-kidney', n_cases=N, "
        "seed=S) or medlens.datasets.kidney_phantom(k, seed=S)."
    ),
    modality="CT-like (synthetic)",
    sources=(SourcePackage(kind="procedural", name="medlens.datasets.kidney_phantom",
                           version="1"),),
    license="Apache-2.0 (generated by medlens)",
    size="n_cases (default 10) volumes of 160x160x64 @ 0.8x0.8x3 mm; about 2 MB per case",
    can_show=(
        "that a 3D CT segmentation pipeline (HU windowing, anisotropic spacing, "
        "multi-class KiTS labels, hierarchical evaluation) runs end to end on a CPU",
        "that metrics and evaluation handle small lesions, multiple lesions and absent "
        "classes (cases without cysts)",
        "relative comparisons of training settings on an easy, controlled task",
    ),
    cannot_show=(
        "clinical accuracy of anything: the images are synthetic caricatures with simple "
        "shapes and textures",
        "performance on KiTS or any real CT: no scanner physics, organs, artefacts or "
        "pathology variety of real scans",
    ),
    cases=("kidney_0000 ... kidney_{n-1}: the first n_cases - n_test train, the rest test",),
    label_names=LABELS,
    synthetic=True,
)


def build_phantom_kidney(ctx: BuildContext) -> dict[str, Any]:
    """Build ``phantom-kidney`` (options ``n_cases``, ``seed``, ``n_test``) into ``ctx.out``."""
    import json

    from medlens.io import write_image

    n, seed, n_test = ctx.options["n_cases"], ctx.options["seed"], ctx.options["n_test"]
    cases = []
    for k in range(n):
        case = kidney_phantom(k, seed=seed)
        cid = f"kidney_{k:04d}"
        ip, lp = ctx.path(f"images/{cid}.nii.gz"), ctx.path(f"labels/{cid}.nii.gz")
        write_image(case.image, ip)
        write_image(case.label, lp)
        cases.append({
            "case_id": cid, "images": [ctx.rel(ip)], "labels": [ctx.rel(lp)],
            "role": "test" if k >= n - n_test else "train", "modality": "CT", "malformed": None,
            "meta": {"synthetic": "true", "params": json.dumps(dict(case.params))}})
    return {"cases": cases, "channel_names": {0: "CT"}, "label_names": LABELS,
            "license_text": "Synthetic data generated by medlens (Apache-2.0). No patient data."}
