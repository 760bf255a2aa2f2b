"""Registration of the shipped sample cases with Slicer's Sample Data module.

The cases are listed in Resources/SampleData/sample_data.json (entries: name, image, label,
image_sha256, label_sha256, tumour_type, thumbnail; paths relative to that file). They ship
with the module, so they are registered with file:// URIs (nothing is downloaded) and SHA256
checksums, which Sample Data verifies before loading. The image loads as a volume, the ground
truth label as a segmentation, so AI output and truth can be compared. They are synthetic
phantoms: the category says so.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from batseg.errors import BATsegError

from BATsegSlicerLib.commands import MODULE_DIR

SAMPLE_DATA_JSON = os.path.join(MODULE_DIR, "Resources", "SampleData", "sample_data.json")
CATEGORY = "BATseg (synthetic phantoms, not for clinical use)"


@dataclass(frozen=True)
class SampleCase:
    """One shipped sample case, paths resolved."""

    name: str
    image: str
    image_sha256: str
    label: str | None = None
    label_sha256: str | None = None
    tumour_type: str = ""
    thumbnail: str | None = None


def read_sample_cases(path: str = SAMPLE_DATA_JSON) -> list[SampleCase]:
    """The sample cases listed in `path` ([] if the file does not exist)."""
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError) as error:
        raise BATsegError(f"{path} cannot be read: {error}") from None
    if isinstance(entries, dict):
        entries = entries.get("cases", [])
    if not isinstance(entries, list):
        raise BATsegError(f"{path} must hold a list of sample cases")
    folder = os.path.dirname(os.path.abspath(path))
    return [_case(entry, folder) for entry in entries]


def _case(entry: dict[str, Any], folder: str) -> SampleCase:
    def resolve(key: str) -> str | None:
        value = entry.get(key)
        return os.path.normpath(os.path.join(folder, value)) if value else None

    try:
        return SampleCase(name=str(entry["name"]), image=resolve("image"), image_sha256=str(entry["image_sha256"]),
                          label=resolve("label"), label_sha256=entry.get("label_sha256"),
                          tumour_type=str(entry.get("tumour_type", "")), thumbnail=resolve("thumbnail"))
    except KeyError as missing:
        raise BATsegError(f"a sample case has no {missing.args[0]!r} field") from None


def registration_arguments(case: SampleCase) -> dict[str, Any]:
    """Keyword arguments of SampleDataLogic.registerCustomSampleDataSource for one case
    (`loadFileTypes`: `loadFileType` is its deprecated spelling, kept by Slicer for old callers)."""
    uris = [pathlib.Path(case.image).as_uri()]
    file_names = [os.path.basename(case.image)]
    node_names = [case.name]
    checksums = [f"SHA256:{case.image_sha256}"]
    load_types = ["VolumeFile"]
    if case.label and case.label_sha256:
        uris.append(pathlib.Path(case.label).as_uri())
        file_names.append(os.path.basename(case.label))
        node_names.append(f"{case.name} ground truth")
        checksums.append(f"SHA256:{case.label_sha256}")
        load_types.append("SegmentationFile")
    arguments = {"category": CATEGORY, "sampleName": case.name, "uris": uris, "fileNames": file_names,
                 "nodeNames": node_names, "checksums": checksums, "loadFileTypes": load_types}
    if case.thumbnail and os.path.isfile(case.thumbnail):
        arguments["thumbnailFileName"] = case.thumbnail
    return arguments


def register_sample_data(path: str = SAMPLE_DATA_JSON) -> int:
    """Register every sample case with the Sample Data module (application only); returns the count."""
    import SampleData

    cases = read_sample_cases(path)
    for case in cases:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**registration_arguments(case))
    return len(cases)
