"""The DICOM acquisition facts of an input volume, handed to the engine as a BIDS sidecar.

The engine warns when the input is not T1-weighted (`batseg/acquisition.py`), reading the DICOM
header of a series or the BIDS sidecar FILE.json beside an image file. The module gives the
engine a NIfTI file, so the header would be lost: a volume loaded through Slicer's DICOM module
keeps its instance UIDs in the node attribute "DICOM.instanceUIDs", and the DICOM database gives
their tags. The first instance's echo, repetition and inversion times (in seconds, as BIDS
has them), modality, series description and contrast agent are written as input.json beside
the input file. Nothing that identifies the patient is written. A volume that did not come from
DICOM (or a Slicer without a DICOM database, as in the headless tests) gets no sidecar, and the
engine then gives no verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from batseg import acquisition

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


def _database_tag(tag: str) -> str:
    """A SimpleITK tag ("0018|0081", as the engine reads headers) as Slicer's DICOM database spells it."""
    return tag.replace("|", ",").upper()


# BIDS key -> DICOM tag, the tags the engine reads from a header; times are converted ms -> s.
TIME_TAGS = {key: _database_tag(tag) for key, tag in (
    ("EchoTime", acquisition.TAG_ECHO_TIME), ("RepetitionTime", acquisition.TAG_REPETITION_TIME),
    ("InversionTime", acquisition.TAG_INVERSION_TIME))}
TEXT_TAGS = {key: _database_tag(tag) for key, tag in (
    ("Modality", acquisition.TAG_MODALITY), ("SeriesDescription", acquisition.TAG_DESCRIPTION),
    ("ContrastBolusAgent", acquisition.TAG_CONTRAST_AGENT))}

InstanceValue = Callable[[str, str], str]  # (instance UID, tag) -> value, '' when absent


def dicom_database_lookup() -> InstanceValue | None:
    """Slicer's DICOM database lookup, or None when there is no database (headless, no DICOM module)."""
    import slicer

    database = getattr(slicer, "dicomDatabase", None)
    return None if database is None else database.instanceValue


def acquisition_facts(volume_node, instance_value: InstanceValue) -> dict:
    """The BIDS-style facts of the volume's first DICOM instance; {} when it has none."""
    uids = (volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if not uids:
        return {}
    facts: dict = {}
    for key, tag in TIME_TAGS.items():
        value = acquisition.first_number(instance_value(uids[0], tag))
        if value is not None:
            facts[key] = value / 1000.0
    for key, tag in TEXT_TAGS.items():
        text = str(instance_value(uids[0], tag) or "").strip()
        if text:
            facts[key] = text
    return facts


def write_sidecar(volume_node, image_path: str, instance_value: InstanceValue | None = None) -> str | None:
    """Write IMAGE.json beside `image_path` (IMAGE.nii.gz) when the volume has DICOM facts; its path or None."""
    lookup = instance_value or dicom_database_lookup()
    facts = acquisition_facts(volume_node, lookup) if lookup is not None else {}
    if not facts:
        return None
    path = str(acquisition.sidecar_path(Path(image_path)))  # where the engine looks for it
    with open(path, "w", encoding="utf-8") as handle:  # a private temporary folder: no one else's file
        json.dump(facts, handle, indent=1)
    return path

