"""``registration-2d``: the ITK Software Guide's brain slices with their known transforms.

The slices come from Debian ``insighttoolkit5-examples``. Every moving image
was made from ``BrainProtonDensitySliceBorder20`` (221x257 pixels, unit spacing)
by a transform the ITK Software Guide states; the guide's registration examples
(``ImageRegistration1``, ``2``, ``4``, ``5``, ``6``, ``7``) report what they
recover. Transforms are given the ITK way, mapping fixed points to moving points,
in pixel indices and as a 4x4 RAS+ world matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.datasets._brain import ITK_DATA, ITK_EXAMPLES
from medlens.datasets._build import BuildContext
from medlens.datasets._errors import DatasetError
from medlens.datasets._types import DatasetCard, ReferenceTransform

__all__ = ["CENTER", "PAIRS", "REGISTRATION_2D", "build_registration_2d", "index_matrix"]

#: ITK's geometric centre of a 221x257 unit-spacing slice: origin + spacing * size / 2.
CENTER = (110.5, 128.5)

# case id -> file name in the package
_IMAGES = {
    "pd": "BrainProtonDensitySliceBorder20.png",
    "pd_shift13x17": "BrainProtonDensitySliceShifted13x17y.png",
    "pd_rot10": "BrainProtonDensitySliceRotated10.png",
    "pd_r10x13y17": "BrainProtonDensitySliceR10X13Y17.png",
    "pd_r10x13y17s12": "BrainProtonDensitySliceR10X13Y17S12.png",
    "t1": "BrainT1SliceBorder20.png",
    "pd_dirplus30": "BrainProtonDensitySliceBorder20DirectionPlus30.mhd",
    "pd_dirminus30": "BrainProtonDensitySliceBorder20DirectionMinus30.mhd",
    "pd_shift13x17_dirplus30": "BrainProtonDensitySliceShifted13x17yDirectionPlus30.mhd",
    "pd_shift13x17_dirminus30": "BrainProtonDensitySliceShifted13x17yDirectionMinus30.mhd",
    "t1_dirplus30": "BrainT1SliceBorder20DirectionPlus30.mhd",
    "t1_dirminus30": "BrainT1SliceBorder20DirectionMinus30.mhd",
}
_MASK = "BrainProtonDensitySliceBorder20Mask.png"
# the .mhd files hold the same pixels as these PNGs (checked at build time)
_SAME_PIXELS = {
    "pd_dirplus30": "pd", "pd_dirminus30": "pd", "t1_dirplus30": "t1", "t1_dirminus30": "t1",
    "pd_shift13x17_dirplus30": "pd_shift13x17", "pd_shift13x17_dirminus30": "pd_shift13x17",
}


@dataclass(frozen=True)
class _PairSpec:
    pair_id: str
    fixed: str
    moving: str
    model: str
    angle_deg: float
    scale: float
    translation: tuple[float, float]
    derivation: str
    documented: str
    reported: str
    example: str


def _s12_translation() -> tuple[float, float]:
    # moving -> fixed is y -> 1.2 R(+10 deg)(y - c) + c + (13, 17); fixed -> moving is its inverse
    a = np.deg2rad(-10.0)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = -(r @ np.array([13.0, 17.0])) / 1.2
    return float(t[0]), float(t[1])


_SHIFT_DOC = ("The second image is the result of intentionally translating the first image by "
              "(13, 17) millimeters.")
_EXACT_SHIFT = ("exact: the moving pixels equal the fixed pixels shifted by (13, 17) "
                "(checked pixel for pixel at build time)")

PAIRS: tuple[_PairSpec, ...] = (
    _PairSpec("pd_shift13x17", "pd", "pd_shift13x17", "translation", 0.0, 1.0, (13.0, 17.0),
              _EXACT_SHIFT, _SHIFT_DOC, "Translation X = 13.0012, Translation Y = 16.9999",
              "ImageRegistration1.cxx (mean squares, translation)"),
    _PairSpec("pd_rot10", "pd", "pd_rot10", "rigid", 10.0, 1.0, (0.0, 0.0),
              "the guide's stated rotation: 10 degrees about the geometric centre "
              f"{CENTER}, no translation",
              "The second image is the result of intentionally rotating the first image by 10 "
              "degrees around the geometrical center of the image.",
              "[0.177612, 0.00681015, 0.00396471]: angle 0.177612 rad, translation "
              "(0.00681015, 0.00396471) mm, centre (110.5, 128.5)",
              "ImageRegistration5.cxx (CenteredRigid2D / Euler2D, mean squares)"),
    _PairSpec("pd_r10x13y17", "pd", "pd_r10x13y17", "rigid", 10.0, 1.0, (13.0, 16.0),
              "10 degrees about the geometric centre then (13, 16): the guide's text says "
              "(13, 17) but its own result and a least-squares fit here (9.9993 deg, "
              "12.999, 16.002; mean squared error 23.4 vs 4224 at identity) give 16 in Y",
              "The second image is the result of intentionally rotating the first image by 10 "
              "degrees and then translating it 13mm in X and 17mm in Y.",
              "ImageRegistration5: [0.174582, 13.0002, 16.0007] about (110.5, 128.5); "
              "ImageRegistration6: [0.174527, 12.4528, 16.0766] about the centre of mass "
              "(111.204, 131.591)",
              "ImageRegistration5.cxx / ImageRegistration6.cxx (rigid 2D)"),
    _PairSpec("pd_r10x13y17s12", "pd", "pd_r10x13y17s12", "similarity", -10.0, 1.0 / 1.2,
              _s12_translation(),
              "inverse of y -> 1.2 R(10 deg)(y - c) + c + (13, 17) about the geometric centre "
              "c: scale 1/1.2, angle -10 deg, translation -R(-10 deg)(13, 17)/1.2 = (-13.129, "
              "-12.070); a least-squares fit here gives (0.8333, -9.998 deg, -13.126, -12.068)",
              "The second image is the result of intentionally rotating the first image by 10 "
              "degrees, scaling by 1/1.2 and then translating by (-13,-17).",
              "[0.833237, -0.174511, -12.8065, -12.7244]: scale 0.833237, angle -0.174511 rad, "
              "translation (-12.8065, -12.7244) mm about the centre of mass",
              "ImageRegistration7.cxx (Similarity2D, mean squares)"),
    _PairSpec("t1_pd_shift13x17", "t1", "pd_shift13x17", "translation", 0.0, 1.0, (13.0, 17.0),
              "exact: BrainT1SliceBorder20 is aligned with BrainProtonDensitySliceBorder20, whose "
              "pixels shifted by (13, 17) are the moving image",
              "A T1 MRI (fixed image) and a proton density MRI (moving image) ... The second "
              "image is the result of intentionally translating the image "
              "BrainProtonDensitySliceBorder20.png by (13,17) millimeters.",
              "ImageRegistration2 (mutual information, Viola-Wells): 12.9147, 17.0871; "
              "ImageRegistration4 (Mattes mutual information): 13.0204, 17.0006",
              "ImageRegistration2.cxx / ImageRegistration4.cxx (multi-modality)"),
)


def _direction_pairs() -> tuple[_PairSpec, ...]:
    out = []
    for sign in ("plus", "minus"):
        for fixed, cross in ((f"pd_dir{sign}30", False), (f"t1_dir{sign}30", True)):
            moving = f"pd_shift13x17_dir{sign}30"
            pid = ("t1_" if cross else "") + moving
            out.append(_PairSpec(
                pid, fixed, moving, "translation", 0.0, 1.0, (13.0, 17.0),
                "exact in pixel indices (same pixels as the PNG pair); the world transform "
                "follows from the direction matrices in the .mhd headers",
                f"Same pixels as the {'T1/PD' if cross else 'PD'} shift pair, with the "
                f"image direction rotated by {'+' if sign == 'plus' else '-'}30 degrees in "
                "the MetaImage header (TransformMatrix).",
                "not used by a Software Guide example", "-"))
        out.append(_PairSpec(
            f"pd_dir{sign}30_vs_pd", "pd", f"pd_dir{sign}30", "rigid", 0.0, 1.0, (0.0, 0.0),
            "exact: identical pixels, only the header direction differs, so the world "
            "transform is a rotation by 30 degrees about the origin",
            "BrainProtonDensitySliceBorder20 with a direction matrix of "
            f"{'+' if sign == 'plus' else '-'}30 degrees.",
            "not used by a Software Guide example", "-"))
    return tuple(out)


ALL_PAIRS = PAIRS + _direction_pairs()


def _describe(spec: _PairSpec) -> str:
    what = {"translation": "translation", "rigid": "rotation + translation",
            "similarity": "similarity"}[spec.model]
    if spec.pair_id.endswith("_vs_pd"):
        return (f"{spec.fixed} -> {spec.moving}: same pixels, header direction rotated by "
                f"{'+' if 'plus' in spec.pair_id else '-'}30 deg (world rotation about the origin)")
    return (f"{spec.fixed} -> {spec.moving}: {what}, angle {spec.angle_deg:g} deg, scale "
            f"{spec.scale:.6g}, translation ({spec.translation[0]:.3f}, "
            f"{spec.translation[1]:.3f}) pixels about centre {CENTER} (fixed -> moving)")

REGISTRATION_2D = DatasetCard(
    name="registration-2d",
    title="2D registration: the ITK Software Guide brain slices with their documented "
          "transforms",
    description=(
        "Proton-density (PD) and T1 MRI brain slices (221x257 pixels, 1 mm) from Debian "
        "insighttoolkit5-examples, used throughout the ITK Software Guide's registration "
        "chapter. Each moving image was made from BrainProtonDensitySliceBorder20 by a "
        "stated transform: a (13, 17) mm shift, a 10 degree rotation about the image centre, "
        "rotation plus shift (R10X13Y17), rotation, 1/1.2 scaling and shift (R10X13Y17S12); "
        "the T1 slice is aligned with the PD slice for cross-modality tests; .mhd copies "
        "with +-30 degree direction matrices test geometry handling. The PNG palettes are "
        "converted to single-channel images (.mha). transforms.json holds, per pair, the "
        "reference transform (fixed -> moving, as ITK defines it) in pixel indices and as a "
        "4x4 RAS+ world matrix, the guide's statement and the result its example reports. "
        "The fixed image's registration mask (BrainProtonDensitySliceBorder20Mask) is the "
        "label of case `pd`."
    ),
    modality="MR (PD- and T1-weighted 2D slices)",
    sources=(replace(ITK_EXAMPLES, files=(
        *(f"{ITK_DATA}/{f}" for f in (*_IMAGES.values(), _MASK)),
        "usr/share/doc/insighttoolkit5-examples/copyright")),),
    license="Apache-2.0 (ITK examples data: `Files: *` of its Debian copyright file, whose "
            "header notes that Debian's ITK binaries are GPL because they link FFTW)",
    size=f"{len(_IMAGES)} images of 221x257 @ 1 mm, {len(ALL_PAIRS)} pairs; about 0.5 MB",
    can_show=(
        "that translation, rigid and similarity registration recover a known transform "
        "(error in mm against transforms.json), mono- and multi-modal (T1 vs PD)",
        "that direction matrices are honoured (the +-30 degree .mhd pairs)",
        "comparison with the numbers the ITK Software Guide reports for the same pairs",
    ),
    cannot_show=(
        "deformable registration accuracy: all transforms are global and linear",
        "3D performance or run time on clinical volumes",
        "robustness to real inter-scan differences: the moving images are resampled copies "
        "of the fixed one (same noise, no anatomy change)",
    ),
    cases=tuple(f"{cid} (test): {name}" for cid, name in _IMAGES.items()),
    label_names={0: "outside mask", 1: "registration mask"},
    transforms=tuple((spec.pair_id, _describe(spec)) for spec in ALL_PAIRS),
)


def index_matrix(angle_deg: float, scale: float, translation: tuple[float, float],
                 center: tuple[float, float] = CENTER) -> npt.NDArray[np.float64]:
    """3x3 homogeneous matrix of ``x -> s R(angle) (x - c) + c + t`` in pixel indices.

    Examples
    --------
    >>> index_matrix(0.0, 1.0, (13.0, 17.0)).tolist()
    [[1.0, 0.0, 13.0], [0.0, 1.0, 17.0], [0.0, 0.0, 1.0]]
    """
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(center, dtype=np.float64)
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = c + np.asarray(translation, dtype=np.float64) - r @ c
    return m + 0.0  # no negative zeros


def _world_matrix(index_m: np.ndarray, fixed_affine: np.ndarray,
                  moving_affine: np.ndarray) -> npt.NDArray[np.float64]:
    m4 = np.eye(4)
    m4[:2, :2] = index_m[:2, :2]
    m4[:2, 3] = index_m[:2, 2]
    out: npt.NDArray[np.float64] = moving_affine @ m4 @ np.linalg.inv(fixed_affine)
    out[np.abs(out) < 1e-12] = 0.0
    return out + 0.0


def _grey(image: Any, what: str = "a palette PNG of registration-2d") -> Any:
    """The one channel of an image stored as equal channels (a grey PNG saved as RGB)."""
    from medlens import Image

    arr = np.asarray(image.array)
    if image.channels:
        if not all(np.array_equal(arr[0], arr[c]) for c in range(1, arr.shape[0])):
            raise DatasetError(f"{what} is not grey")
        arr = arr[0]
    return Image(np.ascontiguousarray(arr), image.affine)


def build_registration_2d(ctx: BuildContext) -> dict[str, Any]:
    """Build ``registration-2d`` into ``ctx.out``."""
    from medlens.io import read_image, write_image

    itk = ctx.package(ITK_EXAMPLES)
    data = itk.root / ITK_DATA
    images = {}
    for cid, fname in _IMAGES.items():
        if not (data / fname).is_file():
            raise DatasetError(f"insighttoolkit5-examples has no {ITK_DATA}/{fname}")
        images[cid] = _grey(read_image(data / fname))
    for cid, same in _SAME_PIXELS.items():
        if not np.array_equal(images[cid].array, images[same].array):
            raise DatasetError(f"{_IMAGES[cid]} does not hold the pixels of {_IMAGES[same]}")
    shifted, fixed = images["pd_shift13x17"].array, images["pd"].array
    if not np.array_equal(shifted[13:, 17:], fixed[:-13, :-17]):
        raise DatasetError("BrainProtonDensitySliceShifted13x17y is not an exact (13, 17) shift")
    mask = _grey(read_image(data / _MASK))
    mask = mask.with_array((np.asarray(mask.array) > 0).astype(np.uint8))

    cases = []
    for cid, fname in _IMAGES.items():
        p = ctx.path(f"images/{cid}.mha")
        write_image(images[cid], p)
        labels = []
        if cid == "pd":
            lp = ctx.path("labels/pd.mha")
            write_image(mask, lp)
            labels.append(ctx.rel(lp))
        cases.append({"case_id": cid, "images": [ctx.rel(p)], "labels": labels, "role": "test",
                      "modality": "MR", "malformed": None,
                      "meta": {"source": fname,
                               "contrast": "T1" if cid.startswith("t1") else "PD"}})
    pairs, table = [], {}
    for spec in ALL_PAIRS:
        im = index_matrix(spec.angle_deg, spec.scale, spec.translation)
        world = _world_matrix(im, images[spec.fixed].affine, images[spec.moving].affine)
        rt = ReferenceTransform(
            model=spec.model,  # type: ignore[arg-type]
            matrix=world, index_matrix=im, angle_deg=spec.angle_deg, scale=spec.scale,
            center_index=CENTER, translation_index=spec.translation,
            derivation=spec.derivation, documented=spec.documented, reported=spec.reported,
            example=spec.example)
        table[spec.pair_id] = {"fixed": f"images/{spec.fixed}.mha",
                               "moving": f"images/{spec.moving}.mha", **rt.to_json()}
        pairs.append({"pair_id": spec.pair_id, "fixed_case": spec.fixed,
                      "moving_case": spec.moving,
                      "cross_modality": spec.fixed[:2] != spec.moving[:2],
                      "transform": rt.to_json()})
    tpath = ctx.path("transforms.json")
    tpath.write_text(json.dumps({
        "convention": "Each transform maps a point of the FIXED image to the corresponding "
                      "point of the MOVING image (ITK's direction). index_matrix acts on "
                      "pixel indices (i, j, 1); matrix_ras_fixed_to_moving acts on RAS+ "
                      "world coordinates in mm (x, y, z, 1).",
        "center_index": list(CENTER), "pairs": table}, indent=2) + "\n", encoding="utf-8")
    return {"cases": cases, "channel_names": {0: "MR"},
            "label_names": dict(REGISTRATION_2D.label_names), "pairs": pairs,
            "extras": {"transforms": "transforms.json"}}
