"""Per-lesion report of a label image: type, type probability, volume, extent, slices, centroid.

Computed on the label image's own grid (native space, after postprocessing), so volumes and
distances are the patient's. Decisions the papers leave open:
- Lesions are the 26-connected components of the tumour union (`batseg.lesions`), numbered 1..n
  from head to feet (decreasing superior coordinate of the centroid), the order in which a
  reader scans a sagittal spine.
- Lesion type: the class with most voxels inside the lesion in the label map (what the user
  sees painted); ties go to the lower label value. Type probability: with probabilities, the
  mean over the lesion's voxels of that type's probability ("mean_probability"); without, the
  share of the lesion's voxels that carry that type ("voxel_share"). The dict says which.
- Extents are measured along the patient's LPS axes, correct for any (oblique) direction
  matrix: every voxel centre is mapped to physical LPS, and the extent along an axis is the
  range of the centres plus the width of one voxel box projected on that axis
  (sum_i |D[a, i]| * spacing_i). For axis-aligned images this is n_voxels * spacing exactly;
  for oblique ones it is the exact extent of the union of the voxel boxes along that axis.
- Slice range: along the slice axis, the index axis with the largest spacing (ties: the
  slowest one, SimpleITK's k). Slice numbers are 1-based ("slices 4-7 of 11"), as viewers
  number images; Slicer's data probe shows 0-based IJK indices (subtract 1).
- Centroid: mean of the voxel centres, in LPS mm (ITK, files) and RAS mm (Slicer's world).
- Per-type figures of each lesion: "type_probabilities" holds, for each of the four types, the
  mean probability of that type over the lesion's voxels (with probabilities; without, the share
  of its voxels painted with that type, as "type_probability_source" says), and
  "type_voxel_shares" the share of its voxels painted with each type. "tumour_probability" is
  the mean over its voxels of the probability of tumour of any type (the four types' sum; null
  without probabilities): the figure a model's minimum tumour probability is compared with
  (`batseg.postprocess`). A lesion painted with
  more than one type is flagged ("mixed_types", "types_present"): a voxel-wise model can split
  one tumour between types (the meningioma sample's lesion came out 1.48 cm3 meningioma, 0.62
  ependymoma and 0.05 hemangioblastoma), and its reported type then rests on a majority.
- Inside or outside the cord ("cord_location"): the model segments no spinal cord, so this can
  be told only from a cord mask on the same grid (`batseg predict --cord-masks`, e.g. the
  Spinal Cord Toolbox's CASE_seg.nii.gz). A lesion with at least `INSIDE_CORD_FRACTION` of its
  voxels inside the mask is "inside_cord" (intramedullary), else "outside_cord"; without a
  mask it is "unknown" and "cord_overlap_fraction" is null. The type is never used to guess it.
- Enhancement ("enhancement"): the lesion's median signal over the cord's (`batseg.enhancement`;
  the reference, the cord's median away from the raw prediction's lesions, is the case's
  "cord_signal"); null without a cord reference. The figure a model's minimum enhancement is
  compared with (`batseg.postprocess`).

Every field is listed in docs/inference.md ("The lesion report, field by field").
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from scipy import ndimage

from batseg.atomic_files import text_writer
from batseg.enhancement import enhancement_per_lesion
from batseg.errors import BATsegError
from batseg.labels import TUMOUR_CLASSES
from batseg.lesions import (
    check_label_map,
    class_counts_per_lesion,
    label_lesions,
    tumour_probabilities,
    voxel_volume_mm3,
)

# Neutral: a report of a model says what that model was trained on (`batseg predict` replaces
# this with the model's own disclaimer), and `batseg evaluate` scores any label maps.
DISCLAIMER = "Research software; not for clinical use."

# LPS axes in order x, y, z, named for the reader.
ANATOMICAL_AXES: tuple[str, ...] = ("left_right", "anterior_posterior", "superior_inferior")
# SimpleITK index axes i, j, k are array axes 2, 1, 0.
INDEX_AXIS_NAMES: tuple[str, ...] = ("k", "j", "i")

# A lesion with at least this share of its voxels inside the given spinal cord mask lies inside the cord.
INSIDE_CORD_FRACTION = 0.5
CORD_LOCATIONS: tuple[str, ...] = ("inside_cord", "outside_cord", "unknown")

CASE_COLUMNS: tuple[str, ...] = ("case_id", "overall_type_key", "overall_type_name", "model_name", "model_version")
CSV_COLUMNS: tuple[str, ...] = (
    *CASE_COLUMNS, "lesion_id", "type_key", "type_name", "type_probability", "type_probability_source",
    "volume_cm3", "extent_left_right_mm", "extent_anterior_posterior_mm", "extent_superior_inferior_mm",
    "slice_axis", "slice_first", "slice_last", "slice_count",
    "centroid_lps_x_mm", "centroid_lps_y_mm", "centroid_lps_z_mm",
    "centroid_ras_x_mm", "centroid_ras_y_mm", "centroid_ras_z_mm",
    *(f"volume_{c.key}_cm3" for c in TUMOUR_CLASSES),
    *(f"probability_{c.key}" for c in TUMOUR_CLASSES),
    "mixed_types", "cord_location", "cord_overlap_fraction", "tumour_probability", "enhancement",
)


class _Geometry:
    """Index-to-LPS mapping of a SimpleITK image, in array (z, y, x) axis order."""

    def __init__(self, image: sitk.Image) -> None:
        self.origin = np.asarray(image.GetOrigin(), dtype=np.float64)
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        # Columns reordered so that column c is the LPS direction of array axis c.
        self.direction = direction[:, ::-1]
        self.spacing = np.asarray(image.GetSpacing(), dtype=np.float64)[::-1]

    def to_lps(self, array_indices: np.ndarray) -> np.ndarray:
        """LPS positions (3, n) of voxel centres given as array indices (3, n)."""
        return self.origin[:, None] + self.direction @ (self.spacing[:, None] * array_indices)

    def voxel_width(self) -> np.ndarray:
        """Width of one voxel box projected on each LPS axis (3,)."""
        return np.abs(self.direction) @ self.spacing


def lesion_report(
    labels: sitk.Image,
    probabilities: np.ndarray | None = None,
    case_id: str = "",
    cord_mask: np.ndarray | None = None,
    volume: np.ndarray | None = None,
    cord_signal: float | None = None,
) -> dict:
    """The report of every lesion in `labels` plus case-level totals (see the module docstring).

    `probabilities`: (5, z, y, x) with background first or (4, z, y, x) tumour classes only, on
    the label image's grid (SimpleITK array order). `cord_mask`: a spinal cord mask (z, y, x)
    on that grid (non-zero inside the cord), or None when there is none. `volume`: the scan on
    that grid and `cord_signal` the cord's median signal, for each lesion's enhancement.
    """
    if labels.GetDimension() != 3:
        raise BATsegError(f"the label image must be 3-D, got {labels.GetDimension()}-D: pass a 3-D label volume")
    array = sitk.GetArrayFromImage(labels)
    check_label_map(array, "label image")
    if cord_mask is not None and tuple(np.shape(cord_mask)) != array.shape:
        raise BATsegError(
            f"the spinal cord mask ({' x '.join(map(str, np.shape(cord_mask)))}) is not on the label image's grid "
            f"({' x '.join(map(str, array.shape))}): give a mask of the same scan"
        )
    cord = None if cord_mask is None else np.asarray(cord_mask) != 0
    geometry = _Geometry(labels)
    voxel_mm3 = voxel_volume_mm3(geometry.spacing)
    tumour_probs = None if probabilities is None else tumour_probabilities(probabilities, array.shape)
    components, count = label_lesions(array > 0)
    counts = class_counts_per_lesion(array, components, count)
    slice_axis = int(np.argmax(geometry.spacing))  # first maximum: axis 0 (k) on ties
    # Each lesion is read inside its bounding box only: cost grows with lesion size, not image size.
    boxes = ndimage.find_objects(components)
    lesions = [
        _describe_lesion(
            _lesion_indices(components, index, boxes[index - 1]), counts[index], tumour_probs, geometry,
            voxel_mm3, slice_axis, cord,
        )
        for index in range(1, count + 1)
    ]
    ratios = enhancement_per_lesion(volume, components, count, cord_signal) if volume is not None else None
    for index, lesion in enumerate(lesions, start=1):
        lesion["enhancement"] = None if ratios is None or np.isnan(ratios[index]) else float(ratios[index])
    lesions.sort(key=lambda lesion: -lesion["centroid_lps_mm"][2])  # head to feet (LPS z = superior)
    for number, lesion in enumerate(lesions, start=1):
        lesion["id"] = number
    summary = _case_summary(array, lesions, voxel_mm3, geometry, slice_axis, case_id, tumour_probs is not None)
    lesions = summary.pop("lesions")
    return {**summary, "cord_mask": cord is not None,
            "cord_signal": None if cord_signal is None or volume is None else float(cord_signal),
            "lesions": lesions}  # the lesion list stays last


def _lesion_indices(components: np.ndarray, index: int, box: tuple[slice, ...]) -> tuple[np.ndarray, ...]:
    """Array indices (z, y, x) of the voxels of lesion `index`, found inside its bounding box."""
    local = np.nonzero(components[box] == index)
    return tuple(axis_indices + axis_box.start for axis_indices, axis_box in zip(local, box))


def _describe_lesion(
    indices: tuple[np.ndarray, ...],
    type_counts: np.ndarray,
    tumour_probs: np.ndarray | None,
    geometry: _Geometry,
    voxel_mm3: float,
    slice_axis: int,
    cord: np.ndarray | None = None,
) -> dict[str, Any]:
    """The report entry of one lesion (its id is set by the caller after sorting)."""
    positions = geometry.to_lps(np.stack(indices).astype(np.float64))
    extent = np.ptp(positions, axis=1) + geometry.voxel_width()
    column = int(np.argmax(type_counts))
    tumour = TUMOUR_CLASSES[column]
    shares = type_counts / type_counts.sum()
    if tumour_probs is not None:
        per_type = [float(tumour_probs[c][indices].mean()) for c in range(len(TUMOUR_CLASSES))]
    else:
        per_type = [float(share) for share in shares]
    type_probability = per_type[column]
    centroid = positions.mean(axis=1)
    slice_indices = indices[slice_axis]
    return {
        "id": 0,
        "type_key": tumour.key,
        "type_name": tumour.name,
        "type_value": tumour.value,
        "type_probability": type_probability,
        # How sure the network is that the lesion is tumour of any type (what --min-tumour-probability tests).
        "tumour_probability": None if tumour_probs is None else float(sum(per_type)),
        "volume_cm3": float(type_counts.sum() * voxel_mm3 / 1000.0),
        "extent_mm": {name: float(value) for name, value in zip(ANATOMICAL_AXES, extent)},
        "slice_first": int(slice_indices.min()) + 1,
        "slice_last": int(slice_indices.max()) + 1,
        "slice_count": int(np.unique(slice_indices).size),
        "centroid_lps_mm": [float(v) for v in centroid],
        "centroid_ras_mm": [float(-centroid[0]), float(-centroid[1]), float(centroid[2])],
        "type_volumes_cm3": {
            c.key: float(n * voxel_mm3 / 1000.0) for c, n in zip(TUMOUR_CLASSES, type_counts)
        },
        "type_probabilities": {c.key: value for c, value in zip(TUMOUR_CLASSES, per_type)},
        "type_voxel_shares": {c.key: float(share) for c, share in zip(TUMOUR_CLASSES, shares)},
        "types_present": [c.key for c, n in zip(TUMOUR_CLASSES, type_counts) if n > 0],
        "mixed_types": bool(np.count_nonzero(type_counts) > 1),
        **_cord_location(indices, cord),
    }


def _cord_location(indices: tuple[np.ndarray, ...], cord: np.ndarray | None) -> dict[str, Any]:
    """Where the lesion lies relative to the given spinal cord mask (module docstring)."""
    if cord is None:
        return {"cord_location": "unknown", "cord_overlap_fraction": None}
    fraction = float(np.count_nonzero(cord[indices]) / indices[0].size)
    return {
        "cord_location": "inside_cord" if fraction >= INSIDE_CORD_FRACTION else "outside_cord",
        "cord_overlap_fraction": fraction,
    }


def _case_summary(
    array: np.ndarray,
    lesions: list[dict[str, Any]],
    voxel_mm3: float,
    geometry: _Geometry,
    slice_axis: int,
    case_id: str,
    has_probabilities: bool,
) -> dict[str, Any]:
    """Case-level fields around the lesion list."""
    type_volumes = {c.key: float(np.count_nonzero(array == c.value) * voxel_mm3 / 1000.0) for c in TUMOUR_CLASSES}
    largest = max(TUMOUR_CLASSES, key=lambda c: (type_volumes[c.key], -c.value))
    has_tumour = type_volumes[largest.key] > 0
    slice_direction = geometry.direction[:, slice_axis]
    return {
        "case_id": case_id,
        "disclaimer": DISCLAIMER,
        "overall_type_key": largest.key if has_tumour else "none",
        "overall_type_name": largest.name if has_tumour else "none",
        "lesion_count": len(lesions),
        "total_volume_cm3": float(sum(type_volumes.values())),
        "type_volumes_cm3": type_volumes,
        "type_probability_source": "mean_probability" if has_probabilities else "voxel_share",
        "slice_axis": INDEX_AXIS_NAMES[slice_axis],
        "slice_axis_anatomical": ANATOMICAL_AXES[int(np.argmax(np.abs(slice_direction)))],
        "slice_total": int(array.shape[slice_axis]),
        "slice_numbering": "1-based",
        "spacing_mm": [float(s) for s in geometry.spacing[::-1]],  # SimpleITK order (i, j, k)
        "mixed_type_lesions": sum(1 for lesion in lesions if lesion["mixed_types"]),
        "lesions": lesions,
    }


def _csv_text(report: dict) -> str:
    """The report as CSV text: one row per lesion, each with the case's columns.

    A case without a lesion still gets one row (its case columns, lesion columns empty), so
    that the CSVs of a folder of cases concatenate into a table where every case appears.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    model = report.get("model") or {}
    case = [report["case_id"], report["overall_type_key"], report["overall_type_name"],
            model.get("name", ""), model.get("version", "")]
    for lesion in report["lesions"]:
        writer.writerow(case + _lesion_cells(report, lesion))
    if not report["lesions"]:
        writer.writerow(case + [""] * (len(CSV_COLUMNS) - len(case)))
    return buffer.getvalue()


def _lesion_cells(report: dict, lesion: dict) -> list:
    """The lesion columns of one CSV row."""
    return [
        lesion["id"], lesion["type_key"], lesion["type_name"],
        _round(lesion["type_probability"]), report["type_probability_source"], _round(lesion["volume_cm3"]),
        *(_round(lesion["extent_mm"][name]) for name in ANATOMICAL_AXES),
        report["slice_axis"], lesion["slice_first"], lesion["slice_last"], lesion["slice_count"],
        *(_round(v) for v in lesion["centroid_lps_mm"]),
        *(_round(v) for v in lesion["centroid_ras_mm"]),
        *(_round(lesion["type_volumes_cm3"][c.key]) for c in TUMOUR_CLASSES),
        *(_round(lesion["type_probabilities"][c.key]) for c in TUMOUR_CLASSES),
        "yes" if lesion["mixed_types"] else "no", lesion["cord_location"],
        "" if lesion["cord_overlap_fraction"] is None else _round(lesion["cord_overlap_fraction"]),
        "" if lesion["tumour_probability"] is None else _round(lesion["tumour_probability"]),
        "" if lesion.get("enhancement") is None else _round(lesion["enhancement"]),
    ]


def _round(value: float) -> float:
    """Six decimals: below 1 mm3 for cm3 and below 1 micrometre for mm, enough for a table."""
    return round(float(value), 6)


def report_files(report: dict, json_path: str | os.PathLike, csv_path: str | os.PathLike) -> list[tuple]:
    """The report's two files as (path, writer, suffix) for `batseg.atomic_files.write_all_or_nothing`."""
    return [
        (Path(json_path), text_writer(json.dumps(report, indent=2) + "\n"), ""),
        (Path(csv_path), text_writer(_csv_text(report)), ""),
    ]

