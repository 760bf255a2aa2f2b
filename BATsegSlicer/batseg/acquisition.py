"""What the scanner metadata says about an input's contrast, and a warning when it is not T1.

The model was trained on sagittal T1 post-gadolinium images only. On a T2-weighted scan the
cerebrospinal fluid is the brightest tissue of the canal, and models trained on T1 Gd mark it
as tumour (measured: the shipped models report a "meningioma" on real T2 scans of healthy
volunteers, see the model card). A radiologist who loads the wrong series of a study should be
told so, whatever the network answers. The image alone cannot say which contrast it is (without
a cord segmentation the intensities have no anatomy), but the acquisition metadata can:

- a DICOM series: EchoTime (0018,0081), RepetitionTime (0018,0080), InversionTime (0018,0082),
  SeriesDescription (0008,103E), ContrastBolusAgent (0018,0010) and Modality (0008,0060) of its
  first file (every slice of a series shares them);
- an image file: its BIDS sidecar, FILE.json beside FILE.nii.gz (EchoTime, RepetitionTime and
  InversionTime in seconds, as dcm2niix writes them; SeriesDescription; ContrastBolusIngredient),
  and the BIDS suffix of its name (sub-01_T2w.nii.gz);
- nothing else: a file without metadata gets no verdict (weighting "unknown") and no warning.

Decisions (`weighting`): the times decide when the echo time is known, the free-text description
or BIDS suffix only when it is not (descriptions are whatever the site typed). An inversion time
over 1500 ms is FLAIR; 50-300 ms with a long TR (>= 2000 ms) is STIR (fat suppressed, fluid
bright). Otherwise a long echo (TE >= 60 ms) is T2 weighting: T1 spin-echo and turbo-spin-echo
sequences use TE of about 8-20 ms and gradient-echo T1 under 10 ms, T2 TSE about 80-120 ms. A
short echo with TR >= 2000 ms and no inversion is proton-density weighting (MPRAGE-type T1 has an
inversion time). Anything else with a short echo is taken as T1. A sidecar time over 1 (second) is read as milliseconds:
no MR echo or repetition used in the spine lasts a second, and some converters write ms.
The warning never stops the run (the user may know better); it is printed, shown in the Slicer
panel and written into the lesion report with the facts it rests on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batseg.io import Case

# SimpleITK (batseg.dicom, batseg.io) is imported where a header or a file is read, not here: the
# Slicer module's Logic imports this module's tags and `first_number` when Slicer starts.

T1 = "T1-weighted"
UNKNOWN = "unknown"

# Thresholds of `weighting` (ms), see the module docstring.
LONG_ECHO_MS = 60.0
LONG_REPETITION_MS = 2000.0
STIR_INVERSION_MS = (50.0, 300.0)
FLAIR_INVERSION_MS = 1500.0

TAG_ECHO_TIME = "0018|0081"
TAG_REPETITION_TIME = "0018|0080"
TAG_INVERSION_TIME = "0018|0082"
TAG_DESCRIPTION = "0008|103e"
TAG_CONTRAST_AGENT = "0018|0010"
TAG_MODALITY = "0008|0060"

# BIDS anatomical suffixes that are not T1 (https://bids-specification.readthedocs.io, "anat").
NOT_T1_SUFFIXES = {
    "T2w": "T2-weighted", "T2starw": "T2*-weighted", "FLAIR": "FLAIR", "PDw": "proton-density-weighted",
    "PD": "proton-density-weighted", "T2map": "a T2 map", "dwi": "diffusion-weighted",
}
# Words of a series description that name another contrast (matched as whole words, any case).
NOT_T1_WORDS = {
    "t2": "T2-weighted", "t2w": "T2-weighted", "t2star": "T2*-weighted", "stir": "STIR", "flair": "FLAIR",
    "pd": "proton-density-weighted", "pdw": "proton-density-weighted", "dwi": "diffusion-weighted",
    "diffusion": "diffusion-weighted", "adc": "an ADC map", "trace": "diffusion-weighted",
}


@dataclass(frozen=True)
class Acquisition:
    """The contrast facts of one input, and where they came from ("DICOM", "BIDS sidecar", ...)."""

    source: str = ""
    modality: str = ""
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    inversion_time_ms: float | None = None
    description: str = ""
    contrast_agent: str = ""

    def as_dict(self) -> dict:
        """The facts and the weighting read from them, for the lesion report."""
        return {**asdict(self), "weighting": weighting(self)}


def of_case(case: Case) -> Acquisition:
    """The facts of a case: its DICOM header, or its image file's sidecar and name."""
    if case.kind == "dicom":
        return from_dicom(case.dicom_files[0]) if case.dicom_files else Acquisition()
    return from_file(case.path)


def from_dicom(first_file: str) -> Acquisition:
    """The facts in the DICOM header of a series' first file (empty when unreadable)."""
    from batseg.dicom import dicom_tags

    try:
        reader = dicom_tags(first_file)
    except RuntimeError:
        return Acquisition()

    def text(tag: str) -> str:
        return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""

    return Acquisition(
        "DICOM", text(TAG_MODALITY), first_number(text(TAG_ECHO_TIME)), first_number(text(TAG_REPETITION_TIME)),
        first_number(text(TAG_INVERSION_TIME)), text(TAG_DESCRIPTION), text(TAG_CONTRAST_AGENT),
    )


def first_number(value: str) -> float | None:
    """The first value of a DICOM decimal string (values separated by backslashes); None when it
    is empty, not a number or not positive."""
    try:
        number = float(str(value or "").split("\\")[0])
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def sidecar_path(image_path: Path) -> Path:
    """FILE.json for FILE.nii.gz (BIDS): the image name without its image suffix, plus .json."""
    from batseg.io import IMAGE_SUFFIXES

    name = image_path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return image_path.with_name(name[: -len(suffix)] + ".json")
    return image_path.with_suffix(".json")


def from_file(image_path: Path) -> Acquisition:
    """The facts of an image file's BIDS sidecar and file name (empty when there are none)."""
    sidecar_file = sidecar_path(image_path)
    suffix = sidecar_file.stem.rsplit("_", 1)[-1] if "_" in sidecar_file.stem else ""
    description = suffix if suffix in NOT_T1_SUFFIXES or suffix == "T1w" else ""
    sidecar = _read_sidecar(sidecar_file)
    if not sidecar:
        return Acquisition("BIDS file name", description=description) if description else Acquisition()
    return Acquisition(
        "BIDS sidecar", str(sidecar.get("Modality", "")), _seconds_to_ms(sidecar.get("EchoTime")),
        _seconds_to_ms(sidecar.get("RepetitionTime")), _seconds_to_ms(sidecar.get("InversionTime")),
        str(sidecar.get("SeriesDescription") or description),
        str(sidecar.get("ContrastBolusIngredient") or sidecar.get("ContrastBolusAgent") or ""),
    )


def _read_sidecar(path: Path) -> dict:
    """The sidecar's JSON object; {} when there is none or it is not a JSON object."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _seconds_to_ms(value: object) -> float | None:
    """A BIDS time (seconds) in ms; a value over 1 is already ms (module docstring)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None
    return float(value) if value > 1 else float(value) * 1000.0


def weighting(facts: Acquisition) -> str:
    """The contrast the facts point to: T1, another named contrast, or UNKNOWN (module docstring)."""
    te, tr, ti = facts.echo_time_ms, facts.repetition_time_ms, facts.inversion_time_ms
    if te is not None:
        if ti is not None and ti >= FLAIR_INVERSION_MS:
            return "FLAIR"
        long_tr = tr is not None and tr >= LONG_REPETITION_MS
        if ti is not None and STIR_INVERSION_MS[0] <= ti <= STIR_INVERSION_MS[1] and long_tr:
            return "STIR"
        if te >= LONG_ECHO_MS:
            return "T2-weighted"
        if ti is None and long_tr:
            return "proton-density-weighted"
        return T1
    if facts.description in NOT_T1_SUFFIXES:
        return NOT_T1_SUFFIXES[facts.description]
    words = re.findall(r"[a-z0-9]+", facts.description.lower().replace("*", "star"))
    named = [NOT_T1_WORDS[w] for w in words if w in NOT_T1_WORDS]
    if named:
        return named[0]
    return T1 if {"t1", "t1w", "mprage"} & set(words) else UNKNOWN


def contrast_warning(facts: Acquisition) -> str:
    """One line when the facts say the input is not an MR T1 image, else ''."""
    if facts.modality and facts.modality.upper() != "MR":
        return (
            f"the {facts.source} metadata says modality {facts.modality}; the model segments MRI only "
            "(sagittal T1 post-gadolinium): load the T1 Gd MR series"
        )
    found = weighting(facts)
    if found in (T1, UNKNOWN):
        return ""
    return (
        f"the scan looks {found} ({_evidence(facts)}, from the {facts.source}); the model was trained on T1 "
        "post-gadolinium only and marks bright fluid as tumour on other contrasts: load the sagittal T1 Gd series"
    )


def _evidence(facts: Acquisition) -> str:
    """The facts behind the verdict, as the user can check them in the header."""
    times = [
        f"{label} {value:.0f} ms"
        for label, value in (("EchoTime", facts.echo_time_ms), ("RepetitionTime", facts.repetition_time_ms),
                             ("InversionTime", facts.inversion_time_ms))
        if value is not None
    ]
    return ", ".join(times) if times else f"description {facts.description!r}"
