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
import os
from typing import Callable

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"

# BIDS key -> DICOM tag (as Slicer's DICOM database spells it); times are converted ms -> s.
TIME_TAGS = {"EchoTime": "0018,0081", "RepetitionTime": "0018,0080", "InversionTime": "0018,0082"}
TEXT_TAGS = {"Modality": "0008,0060", "SeriesDescription": "0008,103E", "ContrastBolusAgent": "0018,0010"}

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
        value = _first_number(instance_value(uids[0], tag))
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
    stem = image_path[: -len(".nii.gz")] if image_path.endswith(".nii.gz") else os.path.splitext(image_path)[0]
    path = stem + ".json"
    with open(path, "w", encoding="utf-8") as handle:  # a private temporary folder: no one else's file
        json.dump(facts, handle, indent=1)
    return path


def _first_number(text: str) -> float | None:
    """The first value of a DICOM decimal string (several values are separated by backslashes);
    None when it is empty, not a number or not positive."""
    try:
        value = float(str(text or "").split("\\")[0])
    except ValueError:
        return None
    return value if value > 0 else None
