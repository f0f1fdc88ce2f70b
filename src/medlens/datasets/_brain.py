"""Brain MRI datasets from Debian ``mricron-data``, ``insighttoolkit5-examples`` and nilearn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medlens.datasets._build import BuildContext
from medlens.datasets._errors import DatasetError
from medlens.datasets._types import DatasetCard, SourcePackage

__all__ = [
    "BRAIN_EXTRACTION",
    "BRAIN_PARCELLATION",
    "BRAIN_TISSUE",
    "ITK_EXAMPLES",
    "MRICRON_DATA",
    "NILEARN",
    "TISSUE_THRESHOLD",
    "build_brain_extraction",
    "build_brain_parcellation",
    "build_brain_tissue",
    "tissue_labels",
]

TEMPLATES = "usr/share/mricron/templates"
ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data"
NILEARN_DATA = "nilearn/datasets/data"

MRICRON_DATA = SourcePackage(
    kind="debian",
    name="mricron-data",
    version="1.2.20211006+dfsg-4",
    files=(f"{TEMPLATES}/ch2.nii.gz", f"{TEMPLATES}/ch2bet.nii.gz",
           "usr/share/doc/mricron-data/copyright"),
    url="pool/main/m/mricron/mricron-data_1.2.20211006+dfsg-4_all.deb",
)
ITK_EXAMPLES = SourcePackage(
    kind="debian",
    name="insighttoolkit5-examples",
    version="5.2.1-5+deb12u1",
    files=(f"{ITK_DATA}/KmeansTest_T1UCharRaw.nii.gz",
           f"{ITK_DATA}/KmeansTest_T1RawSkullStrip.nii.gz",
           "usr/share/doc/insighttoolkit5-examples/copyright"),
    url="pool/main/i/insighttoolkit5/insighttoolkit5-examples_5.2.1-5+deb12u1_all.deb",
)
_MNI = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
NILEARN = SourcePackage(
    kind="pypi",
    name="nilearn",
    version="0.14.1",
    files=(*(f"{NILEARN_DATA}/{_MNI.format(k)}" for k in ("t1", "gm", "wm")),
           "nilearn-0.14.1.dist-info/licenses/LICENSE"),
    url="https://pypi.org/project/nilearn/0.14.1/",
)

#: GM / WM probabilities of brain-tissue are stored as uint8, 255 = probability 1.
PROBABILITY_SCALE = 255.0
#: A voxel whose GM and WM probabilities are both below this is always background.
TISSUE_THRESHOLD = 1.0 / 3.0

BRAIN_EXTRACTION = DatasetCard(
    name="brain-extraction",
    title="Brain extraction (skull stripping) on T1 MRI: Colin27 for training, an ITK "
          "example head for testing",
    description=(
        "Two T1-weighted head MRIs with a binary brain mask each. Training case `colin27`: "
        "the Colin27 `ch2` template (a single subject scanned 27 times and averaged; 1 mm "
        "isotropic, 181x217x181, RAS) from Debian mricron-data, with the mask `ch2bet > 0` "
        "from the same package. Test case `itk_kmeanstest`: `KmeansTest_T1UCharRaw` from "
        "Debian insighttoolkit5-examples, a different subject, acquisition and grid (2x2x3 "
        "mm, 128x128x62, LSA orientation), with the mask `KmeansTest_T1RawSkullStrip > 0` "
        "(the file's non-zero values are 4, 5 and 6, all taken as brain). Each "
        "mask is checked to lie on its image's grid and written as uint8 0/1 NIfTI. The masks "
        "are ALGORITHMIC, not manual: ch2bet is the output of FSL BET on ch2, and the ITK "
        "mask is the output of an ITK skull-stripping pipeline."
    ),
    modality="MR (T1-weighted head)",
    sources=(MRICRON_DATA, ITK_EXAMPLES),
    license="BSD-3-Clause (mricron-data, per its Debian copyright file); Apache-2.0 "
            "(ITK examples data: `Files: *` of its Debian copyright file, whose header notes "
            "that Debian's ITK binaries are GPL because they link FFTW)",
    size="2 cases: 181x217x181 @ 1 mm (train) and 128x128x62 @ 2x2x3 mm (test); about 4 MB",
    can_show=(
        "that a brain-extraction pipeline runs end to end and generalises across scanner, "
        "resolution and orientation (train on one grid, test on a very different one)",
        "geometry handling: the two cases differ in spacing, shape and orientation code",
        "agreement with BET / ITK-style masks (Dice, surface distance)",
    ),
    cannot_show=(
        "accuracy against manual delineation: both masks are algorithmic (BET, ITK), so a "
        "method can score high by imitating their errors",
        "performance on a population: one training and one test subject, no statistics",
        "anything about pathology, children, or non-T1 contrasts",
    ),
    cases=(
        "colin27 (train): Colin27 ch2 T1 with skull; label = ch2bet > 0 (BET, algorithmic)",
        "itk_kmeanstest (test): ITK KmeansTest_T1UCharRaw; label = KmeansTest_T1RawSkullStrip"
        " > 0 (ITK skull strip, algorithmic)",
    ),
    label_names={0: "background", 1: "brain"},
)

BRAIN_PARCELLATION = DatasetCard(
    name="brain-parcellation",
    title="Brain parcellation: Colin27 T1 with the 116-region AAL atlas on the same grid",
    description=(
        "The Colin27 `ch2` T1 template (1 mm, 181x217x181, RAS, with skull) from Debian "
        "mricron-data and the AAL (Automated Anatomical Labeling, Tzourio-Mazoyer et al. "
        "2002) atlas `aal.nii.gz` shipped beside it, which was drawn on this very brain. "
        "Labels 1..116 are AAL regions, named from `aal.nii.txt`; 0 is background. The "
        "atlas is checked to lie on the T1 grid."
    ),
    modality="MR (T1-weighted head)",
    sources=(replace(MRICRON_DATA, files=(
        *(f"{TEMPLATES}/{f}" for f in ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt")),
        "usr/share/doc/mricron-data/copyright")),),
    license="BSD-3-Clause (mricron-data, per its Debian copyright file)",
    size="1 case, 181x217x181 @ 1 mm, 117 label values; about 4 MB",
    can_show=(
        "that a many-label (117 classes) segmentation pipeline, label-wise metrics and "
        "reports handle small and large structures",
        "atlas-to-image registration checks: the atlas is exactly aligned with its T1",
    ),
    cannot_show=(
        "generalisation: there is one subject only, so train and test cannot be disjoint",
        "accuracy of individual-subject parcellation: AAL is a macroscopic atlas drawn on "
        "this template",
    ),
    cases=("colin27 (train): ch2 T1; label = AAL atlas (116 regions)",),
)

BRAIN_TISSUE = DatasetCard(
    name="brain-tissue",
    title="Brain tissue classes on the MNI152 2009a T1 template (GM / WM from the "
          "template's probability maps)",
    description=(
        "The ICBM 2009a nonlinear symmetric MNI152 T1 template with its grey-matter and "
        "white-matter probability maps, as shipped in the nilearn wheel "
        "(nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz; "
        "1 mm, 197x233x189, RAS; probabilities stored as uint8 with 255 = 1). The wheel "
        "ships no CSF map, so labels are 0 = background (CSF and everything outside the "
        "brain), 1 = grey matter, 2 = white matter, by argmax over (p_bg, p_gm, p_wm) with "
        "p_bg = 1 - p_gm - p_wm. Consequently a voxel with both p_gm and p_wm below 1/3 is "
        "always background. The probability maps are kept as extras."
    ),
    modality="MR (T1-weighted template, average of 152 subjects)",
    sources=(NILEARN,),
    license="BSD-3-Clause (nilearn wheel LICENSE); the wheel's own description lists the "
            "template's licence as 'unknown' (upstream: ICBM 2009 copyright notice of the "
            "McConnell Brain Imaging Centre, not shipped in the wheel)",
    size="1 case, 197x233x189 @ 1 mm, 3 classes; about 5 MB",
    can_show=(
        "that a multi-class tissue segmentation pipeline (softmax, per-class Dice, volume "
        "in ml) runs end to end",
        "probabilistic-label handling: the soft GM/WM maps are available beside the hard labels",
    ),
    cannot_show=(
        "performance on real single-subject scans: a template is smooth, noise-free and "
        "has ideal contrast",
        "CSF segmentation: no CSF map is shipped, CSF is part of background",
        "generalisation: one image only",
    ),
    cases=("mni152_2009a (train): MNI152 2009a T1; label = argmax(bg, GM, WM)",),
    label_names={0: "background", 1: "grey matter", 2: "white matter"},
)


def _read(path: Path) -> Any:
    from medlens.io import read_image

    return read_image(path)


def _find(root: Path, stem: str) -> Path:
    for ext in (".nii.gz", ".mha", ".mhd", ".nrrd", ".nii"):
        p = root / f"{stem}{ext}"
        if p.is_file():
            return p
    raise DatasetError(f"{root}: the package has no {stem}.nii.gz / .mha / .mhd / .nrrd")


def _check_grid(image: Any, label: Any, what: str) -> None:
    if image.spatial_shape != label.spatial_shape or not image.same_grid(label):
        raise DatasetError(
            f"{what}: image and label are not on the same grid (shapes "
            f"{image.spatial_shape} vs {label.spatial_shape}, affines\n{image.affine}\nvs\n"
            f"{label.affine})"
        )


def _case(ctx: BuildContext, case_id: str, image: Any, label: Any, role: str,
          meta: dict[str, str]) -> dict[str, Any]:
    from medlens.io import write_image

    img_path = ctx.path(f"images/{case_id}.nii.gz")
    lab_path = ctx.path(f"labels/{case_id}.nii.gz")
    write_image(image, img_path)
    write_image(label, lab_path)
    return {"case_id": case_id, "images": [ctx.rel(img_path)], "labels": [ctx.rel(lab_path)],
            "role": role, "modality": "MR", "malformed": None, "meta": meta}


def _binary(image: Any) -> Any:
    return image.with_array((np.asarray(image.array) > 0).astype(np.uint8))


def _geometry(image: Any) -> str:
    sp = "x".join(f"{s:g}" for s in image.spacing)
    return f"{'x'.join(map(str, image.spatial_shape))} @ {sp} mm, {image.orientation}"


def build_brain_extraction(ctx: BuildContext) -> dict[str, Any]:
    """Build ``brain-extraction`` into ``ctx.out``."""
    mri = ctx.package(MRICRON_DATA)
    itk = ctx.package(ITK_EXAMPLES)
    ch2 = _read(mri.root / TEMPLATES / "ch2.nii.gz")
    bet = _read(mri.root / TEMPLATES / "ch2bet.nii.gz")
    _check_grid(ch2, bet, "mricron-data ch2 / ch2bet")
    t1 = _read(_find(itk.root / ITK_DATA, "KmeansTest_T1UCharRaw"))
    strip = _read(_find(itk.root / ITK_DATA, "KmeansTest_T1RawSkullStrip"))
    _check_grid(t1, strip, "insighttoolkit5-examples KmeansTest_T1UCharRaw / _T1RawSkullStrip")
    if t1.same_grid(ch2):
        raise DatasetError("the ITK test subject unexpectedly shares Colin27's grid")
    cases = [
        _case(ctx, "colin27", ch2, _binary(bet), "train", {
            "source": "mricron-data ch2.nii.gz; mask ch2bet.nii.gz > 0 (FSL BET)",
            "geometry": _geometry(ch2)}),
        _case(ctx, "itk_kmeanstest", t1, _binary(strip), "test", {
            "source": "insighttoolkit5-examples KmeansTest_T1UCharRaw; mask "
                      "KmeansTest_T1RawSkullStrip > 0 (ITK skull strip)",
            "geometry": _geometry(t1)}),
    ]
    return {"cases": cases, "channel_names": {0: "T1"},
            "label_names": dict(BRAIN_EXTRACTION.label_names)}


def _aal_names(path: Path) -> dict[int, str]:
    names: dict[int, str] = {0: "background"}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def build_brain_parcellation(ctx: BuildContext) -> dict[str, Any]:
    """Build ``brain-parcellation`` into ``ctx.out``."""
    mri = ctx.package(MRICRON_DATA)
    ch2 = _read(mri.root / TEMPLATES / "ch2.nii.gz")
    aal = _read(mri.root / TEMPLATES / "aal.nii.gz")
    _check_grid(ch2, aal, "mricron-data ch2 / aal")
    names = _aal_names(mri.root / TEMPLATES / "aal.nii.txt")
    values = {int(v) for v in np.unique(aal.array)}
    missing = sorted(values - set(names))
    if missing:
        raise DatasetError(f"aal.nii.gz has label values without a name in aal.nii.txt: {missing}")
    label = aal.with_array(np.asarray(aal.array).astype(np.uint8))
    cases = [_case(ctx, "colin27", ch2, label, "train", {
        "source": "mricron-data ch2.nii.gz; label aal.nii.gz (names aal.nii.txt)",
        "geometry": _geometry(ch2)})]
    return {"cases": cases, "channel_names": {0: "T1"},
            "label_names": {k: names[k] for k in sorted(names)}}


def tissue_labels(
    gm: npt.ArrayLike, wm: npt.ArrayLike, *, scale: float = PROBABILITY_SCALE
) -> npt.NDArray[np.uint8]:
    """Hard tissue labels from GM / WM probability maps by argmax with a background class.

    Parameters
    ----------
    gm, wm : numpy.ndarray
        Grey- and white-matter probabilities times ``scale`` (same shape).
    scale : float, optional
        The value that means probability 1 (255 for the uint8 maps nilearn ships).

    Returns
    -------
    numpy.ndarray
        uint8 labels: 0 background (p_bg = 1 - p_gm - p_wm is largest), 1 grey
        matter, 2 white matter. Ties go to the lower label.

    Examples
    --------
    >>> import numpy as np
    >>> tissue_labels(np.array([0.2, 0.6, 0.3, 0.4]), np.array([0.3, 0.3, 0.6, 0.4]), scale=1.0)
    array([0, 1, 2, 1], dtype=uint8)
    """
    p_gm = np.asarray(gm, dtype=np.float32) / np.float32(scale)
    p_wm = np.asarray(wm, dtype=np.float32) / np.float32(scale)
    p_bg = np.clip(1.0 - p_gm - p_wm, 0.0, 1.0)
    return np.argmax(np.stack([p_bg, p_gm, p_wm]), axis=0).astype(np.uint8)


def build_brain_tissue(ctx: BuildContext) -> dict[str, Any]:
    """Build ``brain-tissue`` into ``ctx.out``."""
    import shutil

    nl = ctx.package(NILEARN, members=(f"{NILEARN_DATA}/mni_icbm152_",))
    data = nl.root / NILEARN_DATA
    t1, gm, wm = (_read(data / _MNI.format(k)) for k in ("t1", "gm", "wm"))
    _check_grid(t1, gm, "nilearn MNI152 T1 / GM")
    _check_grid(t1, wm, "nilearn MNI152 T1 / WM")
    label = t1.with_array(tissue_labels(gm.array, wm.array))
    cases = [_case(ctx, "mni152_2009a", t1, label, "train", {
        "source": "nilearn " + _MNI.format("t1") + "; label argmax(1 - gm - wm, gm, wm)",
        "geometry": _geometry(t1)})]
    extras = {}
    for key in ("gm", "wm"):
        dst = ctx.path(f"extras/mni152_{key}_probability.nii.gz")
        shutil.copyfile(data / _MNI.format(key), dst)
        extras[f"probability_{key}"] = ctx.rel(dst)
    return {"cases": cases, "channel_names": {0: "T1"},
            "label_names": dict(BRAIN_TISSUE.label_names), "extras": extras}
