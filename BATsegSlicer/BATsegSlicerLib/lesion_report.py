"""The engine's per-lesion report (CASE.report.json) as rows for the results table.

The report is written by `batseg predict` (see batseg/report.py). Field names are read with
their documented alternatives (`centroid_ras` / `centroid_ras_mm`, `slice_range` /
`slice_first` + `slice_last`), so the table does not break if the report gains fields.
The same rows are stored in a vtkMRMLTableNode, so they are saved with the scene.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from batseg.errors import BATsegError

AXES = ("left_right", "anterior_posterior", "superior_inferior")
# "Type probability": how sure the network is of the type; "Tumour probability": of tumour at all,
# whatever the type (what a model's minimum tumour probability is compared with); "Enhancement": the
# lesion's median signal over the spinal cord's (what a model's minimum enhancement is compared with).
TABLE_HEADERS = ("Lesion", "Type", "Type probability", "Tumour probability", "Enhancement", "Volume (cm3)",
                 "Extent LR x AP x SI (mm)", "Slices")


@dataclass(frozen=True)
class Lesion:
    """One lesion of the report."""

    id: int
    type_name: str
    type_probability: float | None
    volume_cm3: float
    extent_mm: tuple[float, float, float]  # left-right, anterior-posterior, superior-inferior
    slices: tuple[int, int] | None  # first and last slice, 1-based
    centroid_ras: tuple[float, float, float]
    tumour_probability: float | None = None  # absent from older reports (and without probabilities)
    enhancement: float | None = None  # absent from older reports (and without a cord to compare with)

    def row(self) -> list[str]:
        """The lesion as the text cells of the results table (TABLE_HEADERS order)."""
        probability, tumour = (_percent(self.type_probability), _percent(self.tumour_probability))
        extent = " x ".join(f"{value:.1f}" for value in self.extent_mm)
        slices = "" if self.slices is None else f"{self.slices[0]}-{self.slices[1]}"
        return [str(self.id), self.type_name, probability, tumour, _times(self.enhancement), f"{self.volume_cm3:.2f}",
                extent, slices]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:.0f} %"


def _times(value: float | None) -> str:
    # Two decimals: tuned minimums such as 1.15 must be told from the lesion's own figure.
    return "" if value is None else f"{value:.2f}x"


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_report(path: str) -> dict[str, Any]:
    """The report dictionary; one-line BATsegError if it is missing or not JSON."""
    if not os.path.isfile(path):
        raise BATsegError(f"the segmentation process did not write {os.path.basename(path)}: see the log for why")
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as error:
        raise BATsegError(f"could not read {os.path.basename(path)}: {error}") from None
    if not isinstance(report, dict) or not isinstance(report.get("lesions", []), list):
        raise BATsegError(f"{os.path.basename(path)} is not a BATseg lesion report")
    return report


def lesions_from_report(report: dict[str, Any]) -> list[Lesion]:
    """The report's lesions in report order."""
    return [_lesion(entry) for entry in report.get("lesions", [])]


def _lesion(entry: dict[str, Any]) -> Lesion:
    extent = entry.get("extent_mm") or {}
    centroid = entry.get("centroid_ras", entry.get("centroid_ras_mm"))
    if centroid is None or len(centroid) != 3:
        raise BATsegError("the lesion report has a lesion without a centroid: the engine and module versions differ")
    return Lesion(
        id=int(entry.get("id", 0)),
        type_name=str(entry.get("type_name") or entry.get("type") or ""),
        type_probability=_optional_float(entry.get("type_probability")),
        volume_cm3=float(entry.get("volume_cm3", 0.0)),
        extent_mm=tuple(float(extent.get(axis, 0.0)) for axis in AXES),
        slices=_slices(entry),
        centroid_ras=tuple(float(v) for v in centroid),
        tumour_probability=_optional_float(entry.get("tumour_probability")),
        enhancement=_optional_float(entry.get("enhancement")),
    )


def _slices(entry: dict[str, Any]) -> tuple[int, int] | None:
    if "slice_range" in entry and entry["slice_range"]:
        first, last = entry["slice_range"]
        return int(first), int(last)
    if "slice_first" in entry and "slice_last" in entry:
        return int(entry["slice_first"]), int(entry["slice_last"])
    return None


def fill_table_node(table_node, lesions: list[Lesion]) -> None:
    """Write the lesions into a vtkMRMLTableNode (text columns, TABLE_HEADERS order)."""
    import vtk

    table = table_node.GetTable()
    table.Initialize()
    columns = []
    for header in TABLE_HEADERS:
        column = vtk.vtkStringArray()
        column.SetName(header)
        table.AddColumn(column)
        columns.append(column)
    for lesion in lesions:
        for column, cell in zip(columns, lesion.row()):
            column.InsertNextValue(cell)
    table.Modified()
    table_node.Modified()
