"""DICOM series: finding them in a folder tree and checking that one forms a single 3-D volume.

A series is usable when every file has PixelSpacing, ImagePositionPatient and
ImageOrientationPatient, no slice position repeats (repeats mean a 4-D, multi-echo or dynamic
series) and the gaps between consecutive slices agree within `SLICE_GAP_TOLERANCE` (a larger
spread means missing slices). Files are sorted along the slice normal, not by file name or
instance number.

The three geometry tags are checked as written, because GDCM smooths over their defects: a
PixelSpacing of 0\\0 or text becomes 1 mm, a negative one is made positive by mirroring the
image, a text ImagePositionPatient becomes the origin with 1 mm slices, and a text
ImageOrientationPatient becomes the identity. Each must hold the standard's count of finite
numbers: PixelSpacing two positive ones, ImagePositionPatient three, ImageOrientationPatient
two perpendicular unit vectors (within `ORIENTATION_TOLERANCE`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from batseg.errors import InputImageError
from batseg.image_headers import numbers, quiet_itk

# Relative deviation allowed between the gaps of consecutive DICOM slices.
SLICE_GAP_TOLERANCE = 0.05
# Allowed deviation of ImageOrientationPatient's row and column vectors from unit length and
# from perpendicular: scanners write them rounded to a few decimals, never further off than this.
ORIENTATION_TOLERANCE = 0.01

TAG_POSITION = "0020|0032"
TAG_ORIENTATION = "0020|0037"
TAG_PIXEL_SPACING = "0028|0030"
TAG_SERIES_DESCRIPTION = "0008|103e"


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder."""

    folder: Path
    uid: str
    files: tuple[str, ...]
    description: str


def dicom_tags(file_name: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file_name)
    reader.LoadPrivateTagsOff()
    with quiet_itk():
        reader.ReadImageInformation()
    return reader


def find_dicom_series(folder: Path, not_dicom: tuple[str, ...] = ()) -> list[DicomSeries]:
    """Every DICOM series in `folder` and its sub-folders (one entry per folder and series).

    A folder whose files all end with one of `not_dicom` (e.g. ".nii.gz") is not scanned:
    GDCM would open every file of a large NIfTI folder only to find no DICOM in it.
    """
    found: list[DicomSeries] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if not any(not name.lower().endswith(not_dicom) for name in files if not name.startswith(".")):
            continue
        with quiet_itk():
            uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(root)
        for uid in uids:
            with quiet_itk():
                files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(root, uid))
            if not files:
                continue
            try:
                reader = dicom_tags(files[0])
                description = reader.GetMetaData(TAG_SERIES_DESCRIPTION).strip() if reader.HasMetaDataKey(
                    TAG_SERIES_DESCRIPTION) else ""
            except RuntimeError:
                description = ""
            found.append(DicomSeries(Path(root), uid, files, description))
    return found


def _tag_numbers(reader: sitk.ImageFileReader, tag: str, label: str, count: int, where: str) -> np.ndarray:
    """The `count` numbers of a backslash-separated DICOM tag; a one-line error for text, a wrong
    count or a non-finite value."""
    text = reader.GetMetaData(tag).strip()
    values = np.asarray(numbers(text.replace("\\", " ")), dtype=float)
    if values.size != count or not np.all(np.isfinite(values)):
        raise InputImageError(
            f"{where} has an invalid {label} ({tag[:4]},{tag[5:]}) '{text[:60]}' (expected {count} numbers); "
            "export the original scanner series"
        )
    return values


def _pixel_spacing(reader: sitk.ImageFileReader, where: str) -> np.ndarray:
    """The in-plane spacing (mm): two positive numbers (GDCM reads 0 as 1 mm and mirrors a negative one)."""
    spacing = _tag_numbers(reader, TAG_PIXEL_SPACING, "PixelSpacing", 2, where)
    if np.any(spacing <= 0):
        raise InputImageError(
            f"{where} has an invalid PixelSpacing {spacing[0]:g}\\{spacing[1]:g} (zero or negative); "
            "export the original scanner series with the real voxel size"
        )
    return spacing


def _orientation_normal(reader: sitk.ImageFileReader, where: str) -> np.ndarray:
    """The slice normal from ImageOrientationPatient, after checking that it holds two perpendicular
    unit vectors (an all-zero one would otherwise put every slice at one position: a "4-D" series)."""
    row_col = _tag_numbers(reader, TAG_ORIENTATION, "ImageOrientationPatient", 6, where)
    row, col = row_col[:3], row_col[3:]
    lengths_ok = all(abs(np.linalg.norm(v) - 1) <= ORIENTATION_TOLERANCE for v in (row, col))
    if not lengths_ok or abs(float(row @ col)) > ORIENTATION_TOLERANCE:
        shown = "\\".join(f"{v:g}" for v in row_col)
        raise InputImageError(
            f"{where} has an invalid ImageOrientationPatient {shown} (not two perpendicular unit vectors); "
            "export the original scanner series"
        )
    return np.cross(row, col)


def _slice_geometry(file_name: str, series_name: str, normal: np.ndarray | None) -> tuple[float, np.ndarray]:
    """One file's position along the slice normal, and the normal (from this file when not yet known)."""
    where = f"DICOM series {series_name} ({Path(file_name).name})"
    try:
        reader = dicom_tags(file_name)
    except RuntimeError:
        raise InputImageError(
            f"DICOM series {series_name}: {Path(file_name).name} cannot be read; export the series again"
        ) from None
    if not reader.HasMetaDataKey(TAG_PIXEL_SPACING):
        raise InputImageError(
            f"DICOM series {series_name} has no PixelSpacing (0028,0030); it cannot be measured in mm: "
            "export the original scanner series"
        )
    if not reader.HasMetaDataKey(TAG_POSITION) or not reader.HasMetaDataKey(TAG_ORIENTATION):
        raise InputImageError(
            f"DICOM series {series_name} lacks ImagePositionPatient/ImageOrientationPatient; "
            "export the original scanner series"
        )
    _pixel_spacing(reader, where)
    file_normal = _orientation_normal(reader, where)
    normal = file_normal if normal is None else normal
    position = _tag_numbers(reader, TAG_POSITION, "ImagePositionPatient", 3, where)
    return float(position @ normal), normal


def sort_dicom_slices(files: Sequence[str], series_name: str) -> tuple[tuple[str, ...], float]:
    """The series' files sorted along the slice normal and the slice gap (mm), after checking that
    they form one evenly spaced volume."""
    positions = []
    normal = None
    for file_name in files:
        position, normal = _slice_geometry(file_name, series_name, normal)
        positions.append(position)
    order = np.argsort(positions, kind="stable")
    sorted_positions = np.asarray(positions)[order]
    gap = 0.0
    if len(files) > 1:
        gaps = np.diff(sorted_positions)
        if np.any(gaps < 1e-3):
            volumes = len(files) / max(1, len(np.unique(np.round(sorted_positions, 3))))
            raise InputImageError(
                f"DICOM series {series_name} repeats slice positions ({len(files)} images, about {volumes:.0f} "
                "per position): it is a 4-D or multi-echo series; export a single 3-D volume"
            )
        if np.max(np.abs(gaps - np.median(gaps))) > SLICE_GAP_TOLERANCE * np.median(gaps):
            raise InputImageError(
                f"DICOM series {series_name} has unevenly spaced slices ({gaps.min():.2f}-{gaps.max():.2f} mm; "
                "missing slices?); export the complete series"
            )
        gap = float(np.median(gaps))
    return tuple(files[i] for i in order), gap
