"""``dicom-samples``: every file of PyPI ``pydicom-data`` and pydicom's own test files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from medlens.datasets._build import BuildContext, safe_id
from medlens.datasets._errors import DatasetError
from medlens.datasets._types import DatasetCard, SourcePackage

__all__ = [
    "DICOM_SAMPLES",
    "MALFORMED",
    "MALFORMED_SERIES",
    "PYDICOM",
    "PYDICOM_DATA",
    "build_dicom_samples",
]

PYDICOM_DATA = SourcePackage(
    kind="pypi",
    name="pydicom-data",
    version="1.0.0",
    files=("data_store/data/*.dcm", "pydicom_data-1.0.0.dist-info/LICENSE"),
    url="https://pypi.org/project/pydicom-data/1.0.0/",
)
PYDICOM = SourcePackage(
    kind="pypi",
    name="pydicom",
    version="3.0.2",
    files=("pydicom/data/test_files/*.dcm", "pydicom/data/test_files/README.txt",
           "pydicom-3.0.2.dist-info/licenses/LICENSE"),
    url="https://pypi.org/project/pydicom/3.0.2/",
)
_DATA_STORE = "data_store/data/"
_TEST_FILES = "pydicom/data/test_files/"

_NO_META = "no File Meta Information header (preamble, DICM prefix and group 0002 missing)"
_BITS = "Bits Stored does not match the bit depth of the encoded samples (pydicom issue #693)"

#: (source, file name) -> why the file is deliberately malformed or non-conformant.
#: Reasons follow pydicom's test_files/README.txt, checked here with pydicom where it says less.
MALFORMED: dict[tuple[str, str], str] = {
    ("pydicom-data", "emri_small_jpeg_2k_lossless_too_short.dcm"):
        "JPEG 2000 pixel data shorter than the frames need (truncated codestream)",
    ("pydicom-data", "bad_sequence.dcm"):
        "invalid sequence encoded as Implicit VR Little Endian with VR UN (pydicom issue #1067)",
    ("pydicom-data", "explicit_VR-UN.dcm"):
        "almost all elements have VR UN (gdcmconv bug, pydicom issue #968)",
    ("pydicom-data", "693_J2KR.dcm"): _BITS,
    ("pydicom-data", "693_UNCI.dcm"): _BITS,
    ("pydicom-data", "693_UNCR.dcm"): _BITS,
    ("pydicom", "693_J2KI.dcm"): _BITS,
    ("pydicom", "MR_truncated.dcm"):
        "Pixel Data truncated: 8130 bytes where 64x64x16-bit needs 8192",
    ("pydicom", "rtplan_truncated.dcm"): "RT Plan truncated part-way through the data set",
    ("pydicom", "badVR.dcm"):
        "an element whose value does not fit its VR ('1A' in an integer string)",
    ("pydicom", "no_meta.dcm"): "CT_small.dcm with " + _NO_META,
    ("pydicom", "ExplVR_BigEndNoMeta.dcm"): _NO_META,
    ("pydicom", "ExplVR_LitEndNoMeta.dcm"): _NO_META,
    ("pydicom", "no_meta_group_length.dcm"): "File Meta Information without its group length",
    ("pydicom", "meta_missing_tsyntax.dcm"): "File Meta Information without Transfer Syntax UID",
    ("pydicom", "JPEG2000-embedded-sequence-delimiter.dcm"):
        "4 bytes of the JPEG 2000 codestream replaced by a Sequence Delimiter: the DICOM "
        "structure is valid but the image is not a valid JPEG 2000 stream (pydicom #1140)",
    ("pydicom", "JPEG-lossy.dcm"):
        "12-bit lossy JPEG with invalid SOS parameters (JPGExtended.dcm is the fixed version)",
    ("pydicom", "GDCMJ2K_TextGBR.dcm"):
        "non-conformant JPEG 2000 Pixel Data that carries a JP2 file header",
    ("pydicom", "J2K_pixelrep_mismatch.dcm"):
        "JPEG 2000 data unsigned while Pixel Representation says signed (pydicom issue #1149)",
    ("pydicom", "empty_charset_LEI.dcm"): "empty Specific Character Set (pydicom issue #1038)",
    ("pydicom", "reportsi_with_empty_number_tags.dcm"): "SR with empty numeric (IS/DS) elements",
}

#: series folders (relative to pydicom's dicomdirtests) that are deliberately non-conformant
MALFORMED_SERIES: dict[str, str] = {
    "TINY_ALPHA/PT000000/ST000000/SE000000":
        "File-set test instances with no Pixel Data ('none of the managed SOP Instances are "
        "conformant', per its README)",
}

DICOM_SAMPLES = DatasetCard(
    name="dicom-samples",
    title="DICOM sample files (CT, MR, US, CR, SEG, RT, SR ...), including deliberately "
          "malformed ones",
    description=(
        "Every .dcm file of the PyPI package pydicom-data (real CT, MR, US, CR/RG, NM, SC, "
        "enhanced CT, DICOM-SEG liver.dcm, many transfer syntaxes) and of pydicom's own "
        "test_files (CT_small, MR_small in several encodings, RT plan/dose/struct, SR, "
        "files without meta header ...). Each file is one case (role test) classified by "
        "its Modality and SOP Class (read with pydicom), with the deliberately malformed or "
        "non-conformant files flagged and the reason given (list in the card). The "
        "multi-file folders of pydicom's dicomdirtests (16x16 downsized clinical series) are "
        "cases too, each a folder, with its numbers of files, series and slice orientations: "
        "CT5N is one clean 5-slice CT series; others hold two orientations, a slice gap or "
        "several series. There are no labels; liver.dcm is a DICOM-SEG whose source CT is "
        "not included."
    ),
    modality="DICOM: CT, MR, US, CR/RG, NM, OT/SC, SEG, RTDOSE, RTPLAN, RTSTRUCT, SR",
    sources=(PYDICOM_DATA, PYDICOM),
    license="MIT (pydicom-data and pydicom LICENSE files; pydicom's README lists GDCM's "
            "BSD-style licence for the files taken from GDCM)",
    size="146 files (68 from pydicom-data, 78 from pydicom) and 7 series folders; about 60 MB",
    can_show=(
        "that a DICOM reader handles many transfer syntaxes (JPEG, JPEG-LS, JPEG 2000, RLE, "
        "deflate, big endian), photometric interpretations and multi-frame objects",
        "that malformed files give a clear error naming the file, never a silent wrong image",
        "DICOM-SEG reading (liver.dcm), RT and SR objects recognised as non-image",
        "series-folder handling: slice sorting, and folders that are not one volume (mixed "
        "orientations, gaps, several series)",
    ),
    cannot_show=(
        "realistic series sizes: the series are tiny (16x16 pixels, 2-50 slices)",
        "anything a model learns: there are no labels and no consistent task",
    ),
    cases=("pydicom-data_<name> (test): one per pydicom-data file",
           "pydicom_<name> (test): one per pydicom test file",
           "pydicom-series_<NN> (test): one per dicomdirtests folder of 2+ files, in "
           "files/pydicom-series/series-<NN> (numbered in the order of the original "
           "folders, which pydicom names after its test patients' IDs; the original folder "
           "is in Case.meta['source'])"),
    malformed=tuple((f"{src}/{name}", why) for (src, name), why in MALFORMED.items())
    + tuple((f"pydicom/dicomdirtests/{rel}", why) for rel, why in MALFORMED_SERIES.items()),
)


def _classify(path: Path) -> dict[str, str]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import UID

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as e:
            return {"modality": "unknown", "header_error": f"{type(e).__name__}: {e}"[:200]}
        out = {"modality": str(ds.get("Modality", "") or "unknown")}
        sop = ds.get("SOPClassUID")
        if sop:
            out["sop_class"] = UID(str(sop)).name
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        out["transfer_syntax"] = UID(str(ts)).name if ts else "not stated"
        for key in ("Rows", "Columns", "NumberOfFrames"):
            if key in ds:
                out[key] = str(ds.get(key))
    return out


def _series_cases(ctx: BuildContext, base: Path) -> list[dict[str, Any]]:
    """One case per folder of pydicom's dicomdirtests holding two or more files."""
    import pydicom

    out: list[dict[str, Any]] = []
    for folder in sorted(p for p in base.rglob("*") if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.name != "DICOMDIR")
        if len(files) < 2:
            continue
        rel = folder.relative_to(base).as_posix()
        # pydicom names the folders after its test patients' IDs: the cache uses neutral
        # names, the original folder stays in meta["source"] (the record, not the card)
        number = f"{len(out) + 1:02d}"
        dst = ctx.path(f"files/pydicom-series/series-{number}/x").parent
        series, orientations, modalities = set(), set(), set()
        for f in files:
            shutil.copyfile(f, dst / f.name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
            series.add(str(ds.get("SeriesInstanceUID", "")))
            orientations.add(tuple(round(float(v), 4) for v in ds.get("ImageOrientationPatient",
                                                                      [])))
            modalities.add(str(ds.get("Modality", "") or "unknown"))
        out.append({
            "case_id": f"pydicom-series_{number}", "images": [ctx.rel(dst)], "labels": [],
            "role": "test", "modality": "/".join(sorted(modalities)),
            "malformed": MALFORMED_SERIES.get(rel),
            "meta": {"source": f"pydicom/dicomdirtests/{rel}", "kind": "series folder",
                     "n_files": str(len(files)), "n_series": str(len(series)),
                     "n_orientations": str(len(orientations))}})
    if not out:
        raise DatasetError(f"{base}: no DICOM series folders")
    return out


def build_dicom_samples(ctx: BuildContext) -> dict[str, Any]:
    """Build ``dicom-samples`` into ``ctx.out``."""
    groups = (
        ("pydicom-data", ctx.package(PYDICOM_DATA, members=(_DATA_STORE,)), _DATA_STORE),
        ("pydicom", ctx.package(PYDICOM, members=(_TEST_FILES,)), _TEST_FILES),
    )
    cases = []
    seen: set[str] = set()
    for src, up, prefix in groups:
        files = sorted((up.root / prefix).glob("*.dcm"))
        if not files:
            raise DatasetError(f"{src} {up.package.version_used}: no .dcm files under {prefix}")
        for f in files:
            dst = ctx.path(f"files/{src}/{f.name}")
            shutil.copyfile(f, dst)
            info = _classify(dst)
            cid = f"{src}_{safe_id(f.name)}"
            if cid in seen:
                raise DatasetError(f"two DICOM sample files map to the case id {cid!r}")
            seen.add(cid)
            modality = info.pop("modality")
            cases.append({"case_id": cid, "images": [ctx.rel(dst)], "labels": [], "role": "test",
                          "modality": modality, "malformed": MALFORMED.get((src, f.name)),
                          "meta": {"source": f"{src}/{f.name}", **info}})
    cases.extend(_series_cases(ctx, groups[1][1].root / _TEST_FILES / "dicomdirtests"))
    missing = [f"{s}/{n}" for (s, n) in MALFORMED if f"{s}_{safe_id(n)}" not in seen]
    if missing:
        raise DatasetError(f"flagged malformed files are missing from the packages: {missing}")
    return {"cases": cases, "channel_names": {}, "label_names": {}}
