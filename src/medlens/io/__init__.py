"""Reading and writing clinical image formats with true geometry.

This is the only part of medlens that knows file formats and LPS/RAS; everything
after it sees :class:`medlens.Image` in RAS+ millimetres.
"""

from medlens.io._dicom import DicomSeries, list_dicom_series, read_dicom_file, read_dicom_series
from medlens.io._dicom_seg import read_dicom_seg, write_dicom_seg
from medlens.io._dicom_write import write_dicom_series
from medlens.io._errors import (
    DicomSeriesError,
    ImageReadError,
    ImageWriteError,
    UnsupportedFormatError,
)
from medlens.io._kspace import (
    CMRxReconKspace,
    FastMRIVolume,
    KspaceReadError,
    ismrmrd_header,
    read_cmrxrecon,
    read_cmrxrecon_mask,
    read_fastmri,
    write_cmrxrecon,
    write_fastmri,
)
from medlens.io._lps import lps_to_ras, ras_to_lps
from medlens.io._nibabel import from_nibabel, to_nibabel
from medlens.io._read import read_image, write_image
from medlens.io._sitk import from_sitk, to_sitk

__all__ = [
    "CMRxReconKspace",
    "DicomSeries",
    "DicomSeriesError",
    "FastMRIVolume",
    "ImageReadError",
    "ImageWriteError",
    "KspaceReadError",
    "UnsupportedFormatError",
    "from_nibabel",
    "from_sitk",
    "ismrmrd_header",
    "list_dicom_series",
    "lps_to_ras",
    "ras_to_lps",
    "read_cmrxrecon",
    "read_cmrxrecon_mask",
    "read_dicom_file",
    "read_dicom_seg",
    "read_dicom_series",
    "read_fastmri",
    "read_image",
    "to_nibabel",
    "to_sitk",
    "write_cmrxrecon",
    "write_dicom_seg",
    "write_dicom_series",
    "write_fastmri",
    "write_image",
]
