from __future__ import annotations

import dataclasses

import pytest

from medlens.datasets import (
    DatasetCard,
    DatasetError,
    DatasetNotFoundError,
    dataset_info,
    fetch,
    list_datasets,
)

NAMES = ["brain-extraction", "brain-tissue", "brain-parcellation", "dicom-samples",
         "registration-2d", "phantom-kidney"]


def test_all_datasets_listed():
    assert [c.name for c in list_datasets()] == NAMES


@pytest.mark.parametrize("card", list_datasets(), ids=lambda c: c.name)
def test_card_complete(card: DatasetCard):
    for f in ("name", "title", "description", "modality", "license", "size"):
        assert getattr(card, f).strip(), f
    assert card.can_show and card.cannot_show and card.cases
    assert all(line.strip() for line in card.can_show + card.cannot_show + card.cases)
    assert card.sources
    for s in card.sources:
        assert s.kind in ("debian", "pypi", "procedural")
        assert s.name and s.version
        if s.kind != "procedural":
            assert s.files and s.url
    assert card.license_text is None  # static card: the text comes from the package
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "x"  # type: ignore[misc]


def test_label_names_where_labelled():
    cards = {c.name: c for c in list_datasets()}
    assert cards["brain-extraction"].label_names == {0: "background", 1: "brain"}
    assert cards["phantom-kidney"].label_names == {0: "background", 1: "kidney", 2: "tumor",
                                                   3: "cyst"}
    assert cards["brain-tissue"].label_names[2] == "white matter"
    assert cards["dicom-samples"].label_names == {}


def test_synthetic_said_so():
    cards = {c.name: c for c in list_datasets()}
    assert [n for n, c in cards.items() if c.synthetic] == ["phantom-kidney"]
    assert "SYNTHETIC" in cards["phantom-kidney"].title
    assert "NOT real patients" in cards["phantom-kidney"].description


def test_dicom_card_flags_malformed():
    card = {c.name: c for c in list_datasets()}["dicom-samples"]
    flagged = {name for name, _ in card.malformed}
    for must in ("pydicom/MR_truncated.dcm",
                 "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm", "pydicom/badVR.dcm",
                 "pydicom/no_meta.dcm",
                 "pydicom/JPEG2000-embedded-sequence-delimiter.dcm"):
        assert must in flagged
    assert all(why for _, why in card.malformed)


def test_unknown_dataset():
    with pytest.raises(DatasetNotFoundError, match="known datasets: brain-extraction"):
        fetch("brain-extractor")
    with pytest.raises(DatasetNotFoundError):
        dataset_info("nope")


def test_options_only_for_procedural():
    with pytest.raises(DatasetError, match="takes no n_cases"):
        fetch("brain-extraction", n_cases=3)


@pytest.mark.parametrize("name", ["brain-extraction", "registration-2d"])
def test_info_after_fetch_has_licence_text_as_shipped(name):
    fetch(name)
    card = dataset_info(name)
    assert card.license_text and "Copyright" in card.license_text
    assert all(s.version_used for s in card.sources)


def test_registration_card_lists_transforms():
    card = {c.name: c for c in list_datasets()}["registration-2d"]
    text = dict(card.transforms)
    assert len(text) == 11
    assert "angle -10 deg, scale 0.833333" in text["pd_r10x13y17s12"]
    assert "translation (13.000, 17.000)" in text["pd_shift13x17"]


def test_parcellation_card_gets_aal_names_after_fetch():
    fetch("brain-parcellation")
    card = dataset_info("brain-parcellation")
    assert len(card.label_names) == 117 and card.label_names[116]
