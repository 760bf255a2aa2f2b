"""The DICOM facts of a volume handed to the engine as a BIDS sidecar (dicom_sidecar.py), and the
engine reading them back (batseg.acquisition), on a real MRML volume node."""

from __future__ import annotations


import pytest

from batseg.acquisition import from_file, weighting
from BATsegSlicerLib.dicom_sidecar import INSTANCE_UIDS_ATTRIBUTE, acquisition_facts, write_sidecar

TAGS = {"0018,0081": "96", "0018,0080": "3000\\3100", "0008,0060": "MR", "0008,103E": "T2 TSE SAG",
        "0018,0010": "", "0010,0010": "DOE^JANE"}


def lookup(uid: str, tag: str) -> str:
    assert uid == "1.2.3.4", "the first instance of the series is read"
    return TAGS.get(tag, "")


def test_facts_of_the_first_instance_in_bids_units(mrml, volume):
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "1.2.3.4 1.2.3.5")
    facts = acquisition_facts(volume, lookup)
    assert facts == {"EchoTime": pytest.approx(0.096), "RepetitionTime": pytest.approx(3.0), "Modality": "MR",
                     "SeriesDescription": "T2 TSE SAG"}  # no empty agent, and never the patient's name


def test_sidecar_is_read_back_by_the_engine(mrml, volume, tmp_path):
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "1.2.3.4")
    image = tmp_path / "input.nii.gz"
    path = write_sidecar(volume, str(image), lookup)
    assert path == str(tmp_path / "input.json")
    assert "DOE" not in (tmp_path / "input.json").read_text()
    facts = from_file(image)
    assert facts.source == "BIDS sidecar" and facts.echo_time_ms == pytest.approx(96.0)
    assert weighting(facts) == "T2-weighted"


def test_no_sidecar_without_dicom_origin_or_database(mrml, volume, tmp_path):
    image = str(tmp_path / "input.nii.gz")
    assert write_sidecar(volume, image, lookup) is None  # not loaded from DICOM
    volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "1.2.3.4")
    assert write_sidecar(volume, image, lambda uid, tag: "") is None  # the database knows nothing
    assert write_sidecar(volume, image) is None  # headless: no DICOM database at all
    assert not list(tmp_path.iterdir())
