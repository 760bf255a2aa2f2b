"""DICOM Segmentation (SEG) output of a DICOM input (`batseg predict --dicom-seg`), with highdicom.

For a case read from a DICOM series, `CASE.seg.dcm` is a DICOM Segmentation object that a PACS,
OHIF, 3D Slicer (QuantitativeReporting) or highdicom opens on top of the source series:
- it references the source series (its study, its patient, every source image by SOP instance
  UID), and its frames lie on the source slices (same rows, columns, positions, orientation and
  spacing): the label map `batseg predict` writes is on the input's exact grid, and its slice k
  is the k-th file of the series sorted along the slice normal (`batseg.dicom.sort_dicom_slices`,
  the order SimpleITK read it in);
- BINARY segmentation, one segment per tumour type, numbered as the label values (1 spinal
  meningioma, 2 ependymoma, 3 astrocytoma, 4 hemangioblastoma), all four present even when a
  type has no voxel (a reader sees the same four segments in every case); empty frames are
  omitted, except in a case without any lesion, whose SEG keeps its (empty) frames so that it
  still says "nothing found" on every slice;
- each segment carries the terminology of the Slicer module's segments (category, type, the
  private type modifier that tells the two Neoplasm-coded types apart, anatomic region spinal
  cord; the one table of `batseg.labels`, which BATsegSlicerLib/terminology.py uses too and
  where the sources of the codes are named) and the same colour (`batseg.labels`,
  written as the recommended CIELab display colour from the colour's 0-255 RGB, as the
  terminology file rounds it);
- the algorithm is identified as automatic, family "Artificial Intelligence" (DCM 123110),
  with the model's name and version and the run's settings as algorithm parameters; the
  content description is the research-use line.

The engine reads DICOM with SimpleITK; highdicom (and pydicom under it) is imported only here,
when a SEG is written, so nothing else depends on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from batseg import __version__
from batseg.errors import BATsegError
from batseg.labels import (  # noqa: F401 (NEOPLASM, PRIVATE_SCHEME, SCT: re-exported with the table)
    CATEGORY, MODIFIER_BY_CLASS_KEY, NEOPLASM, PRIVATE_SCHEME, SCT, SPINAL_CORD, TUMOUR_CLASSES, TYPE_BY_CLASS_KEY,
    Code, display_rgb,
)

SEG_SUFFIX = ".seg.dcm"
# The research-use line of the SEG (ContentDescription is a DICOM LO: 64 characters at most).
CONTENT_DESCRIPTION = "BATseg research software; not for clinical use"
CONTENT_LABEL = "BATSEG"  # a DICOM CS: upper case, 16 characters at most
SERIES_NUMBER_OFFSET = 1000  # the SEG's series number: the source's plus this (a common convention)


def _concept(code: Code):
    from highdicom.sr import CodedConcept

    return CodedConcept(code.value, code.scheme, code.meaning)


def segment_descriptions(model: dict[str, Any], settings: dict[str, Any] | None = None) -> list:
    """highdicom SegmentDescriptions of the four tumour types (segment number = label value)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=_text(model.get("name") or "BATseg model", 64),
        family=codes.DCM.ArtificialIntelligence,
        version=_text(model.get("version") or "unknown", 64),
        source=f"batseg {__version__}",
        parameters={key: _text(value, 64) for key, value in _parameters(model, settings).items()},
    )
    descriptions = []
    for tumour in TUMOUR_CLASSES:
        description = hd.seg.SegmentDescription(
            segment_number=tumour.value,
            segment_label=tumour.name,
            segmented_property_category=_concept(CATEGORY),
            segmented_property_type=_concept(TYPE_BY_CLASS_KEY[tumour.key]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"BATseg {tumour.key}",
            anatomic_regions=[_concept(SPINAL_CORD)],
            display_color=hd.color.CIELabColor.from_rgb(*display_rgb(tumour)),
        )
        modifier = MODIFIER_BY_CLASS_KEY.get(tumour.key)
        if modifier is not None:
            # Nested in the type's item (PS3.3 C.8.20.2): a reader unaware of 99BATSEG still sees "Neoplasm".
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                _concept(modifier)
            ]
        descriptions.append(description)
    return descriptions


def _parameters(model: dict[str, Any], settings: dict[str, Any] | None) -> dict[str, str]:
    """Algorithm parameters: the weights' checksum and the run's settings, as text."""
    parameters = {}
    if model.get("weights_sha256"):
        parameters["weights_sha256"] = str(model["weights_sha256"])[:64]
    for key, value in (settings or {}).items():
        if isinstance(value, (bool, int, float, str)) and key != "created":
            parameters[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return parameters


def _text(value: Any, limit: int) -> str:
    """A DICOM LO value: one line, no backslash, at most `limit` characters."""
    text = " ".join(str(value).replace("\\", "/").split())
    return text[:limit] or "-"


def series_slices(case) -> tuple[tuple[str, ...], float]:
    """A DICOM case's files in the order its image was read (sorted along the slice normal; a
    multi-frame file alone) and the slice gap in mm: the label map's slice k is file k."""
    from batseg.io import _checked_series  # the same (cached) sort that reading the case used

    return _checked_series(case.dicom_files, case.name)


def read_source_images(files: Sequence[str], case_name: str) -> list:
    """The source series' datasets (headers only), in the given (slice) order."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for name in files:
        try:
            datasets.append(pydicom.dcmread(name, stop_before_pixels=True))
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise BATsegError(
                f"DICOM series {case_name}: {Path(name).name} cannot be read for the DICOM SEG ({reason}); "
                "export the series again"
            ) from None
    return datasets


def build_segmentation(
    labels: np.ndarray,
    source_files: Sequence[str],
    case_name: str,
    model: dict[str, Any],
    settings: dict[str, Any] | None = None,
    slice_gap_mm: float = 0.0,
):
    """The DICOM SEG of a (z, y, x) label map (values 0-4) on the grid of `source_files`.

    `source_files` are the series' files in the label map's slice order (one file per slice),
    or a single multi-frame file whose frames are the slices. `slice_gap_mm`: the distance
    between consecutive slices (`batseg.dicom.sort_dicom_slices`), recorded as the SEG's
    spacing between slices, and as its slice thickness where the source gives none.
    """
    import highdicom as hd

    sources = read_source_images(source_files, case_name)
    frames = int(getattr(sources[0], "NumberOfFrames", 1) or 1) if len(sources) == 1 else len(sources)
    rows, columns = int(sources[0].Rows), int(sources[0].Columns)
    if tuple(labels.shape) != (frames, rows, columns):
        raise BATsegError(
            f"case {case_name}: the label map ({' x '.join(map(str, labels.shape))}) is not on the source series' "
            f"grid ({frames} x {rows} x {columns}); the DICOM SEG cannot be written (a bug in batseg; please report it)"
        )
    pixels = np.ascontiguousarray(labels, dtype=np.uint8)
    source = sources[0]
    series_number = SERIES_NUMBER_OFFSET + _integer(getattr(source, "SeriesNumber", None))
    measures = None
    if len(sources) > 1:
        measures = _pixel_measures(source, slice_gap_mm)
        # In memory only: highdicom copies the first source's pixel measures into the SEG. The
        # thickness is type 2 (maybe empty), and a SpacingBetweenSlices that contradicts the
        # slice positions (SimpleITK writes 1 mm) would contradict the SEG's own frame positions.
        for dataset in sources:
            if _positive(dataset.get("SliceThickness")) is None:
                dataset.SliceThickness = measures[0].SliceThickness
            spacing = _positive(dataset.get("SpacingBetweenSlices"))
            if slice_gap_mm and spacing is not None and abs(spacing - slice_gap_mm) > 0.01 * slice_gap_mm:
                dataset.SpacingBetweenSlices = measures[0].SpacingBetweenSlices
    try:
        return hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(model, settings),
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="BATsegSlicer",
            manufacturer_model_name="batseg",
            software_versions=f"batseg {__version__}",
            device_serial_number="0",
            content_description=CONTENT_DESCRIPTION,
            content_label=CONTENT_LABEL,
            series_description=_text(f"BATseg {model.get('name') or ''} {model.get('version') or ''}", 64),
            omit_empty_frames=bool(pixels.any()),  # a case without lesion keeps its empty frames
            pixel_measures=measures,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        # highdicom refuses sources it cannot reference (e.g. missing geometry or UIDs): one line.
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BATsegError(
            f"case {case_name}: cannot write a DICOM SEG for this series ({reason}); "
            "drop --dicom-seg for it or export the original scanner series"
        ) from None


def _pixel_measures(source, slice_gap_mm: float):
    """The SEG's pixel measures: the source's pixel spacing, its slice thickness (the slice gap
    where it has none: SliceThickness is type 2, present but possibly empty) and the slice gap."""
    import highdicom as hd

    spacing = [float(v) for v in source.PixelSpacing]
    thickness = _positive(getattr(source, "SliceThickness", None)) or slice_gap_mm or None
    return hd.PixelMeasuresSequence(
        pixel_spacing=spacing, slice_thickness=thickness, spacing_between_slices=slice_gap_mm or None,
    )


def _positive(value: Any) -> float | None:
    """A positive DICOM DS value, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and np.isfinite(number) else None


def _integer(value: Any) -> int:
    """A DICOM IS value as a small non-negative int (0 when absent or odd)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return number if 0 <= number < 2**31 - 1 - SERIES_NUMBER_OFFSET else 0


def seg_writer(segmentation) -> Callable[[Path], None]:
    """A writer of the SEG for `batseg.atomic_files` (DICOM Part 10 file with its preamble)."""

    def write(temporary: Path) -> None:
        segmentation.save_as(os.fspath(temporary), enforce_file_format=True)

    return write
