"""Lesion report on hand-made label images with sagittal / oblique directions and thick slices."""

from __future__ import annotations

import csv
import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.atomic_files import write_all_or_nothing
from batseg.errors import BATsegError
from batseg.report import DISCLAIMER, lesion_report, report_files

# Sagittal acquisition stored PSR-like: index i runs posterior, j superior, k right (slices).
SAGITTAL_DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL_SPACING = (0.5, 0.6, 3.3)  # i, j, k
ORIGIN = (12.0, -30.0, 100.0)


def write_report(report: dict, json_path: Path, csv_path: Path, overwrite: bool = False) -> None:
    """The report's files written as `batseg predict` writes them (with the case's other outputs)."""
    write_all_or_nothing(report_files(report, json_path, csv_path), overwrite)


def sagittal_image(array: np.ndarray) -> sitk.Image:
    """A label image on the sagittal grid (array order k, j, i)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SAGITTAL_SPACING)
    image.SetDirection(SAGITTAL_DIRECTION)
    image.SetOrigin(ORIGIN)
    return image


def two_lesions() -> np.ndarray:
    """Lesion A (k 2-4, j 10-19, i 5-10): 170 ependymoma + 10 astrocytoma voxels; lesion B above it."""
    array = np.zeros((8, 40, 30), dtype=np.uint8)
    array[2:5, 10:20, 5:11] = 2
    array[3, 10, 5:11] = 3
    array[3, 11, 5:9] = 3
    array[5:7, 30:33, 20:22] = 4  # lesion B: higher j = more superior, 12 voxels
    return array


def test_lesion_volume_extent_slices_centroid_on_a_sagittal_image() -> None:
    report = lesion_report(sagittal_image(two_lesions()), case_id="sub-01")
    assert report["lesion_count"] == 2
    lesion_b, lesion_a = report["lesions"]  # numbered head to feet: B is superior
    assert (lesion_b["id"], lesion_a["id"]) == (1, 2)
    voxel_mm3 = 0.5 * 0.6 * 3.3
    assert lesion_a["volume_cm3"] == pytest.approx(180 * voxel_mm3 / 1000)
    assert lesion_a["type_key"] == "ependymoma" and lesion_a["type_name"] == "Ependymoma"
    assert lesion_a["type_probability"] == pytest.approx(170 / 180)
    assert lesion_a["type_volumes_cm3"]["astrocytoma"] == pytest.approx(10 * voxel_mm3 / 1000)
    # k (3 slices of 3.3 mm) runs left-right, i (6 x 0.5 mm) anterior-posterior, j (10 x 0.6 mm) superior-inferior.
    assert lesion_a["extent_mm"] == pytest.approx(
        {"left_right": 9.9, "anterior_posterior": 3.0, "superior_inferior": 6.0}
    )
    assert (lesion_a["slice_first"], lesion_a["slice_last"], lesion_a["slice_count"]) == (3, 5, 3)
    assert (lesion_b["slice_first"], lesion_b["slice_last"]) == (6, 7)
    image = sagittal_image(two_lesions())
    centroid = image.TransformContinuousIndexToPhysicalPoint((7.5, 14.5, 3.0))  # mean (i, j, k)
    assert lesion_a["centroid_lps_mm"] == pytest.approx(list(centroid))
    assert lesion_a["centroid_ras_mm"] == pytest.approx([-centroid[0], -centroid[1], centroid[2]])
    assert report["slice_axis"] == "k" and report["slice_axis_anatomical"] == "left_right"
    assert report["slice_total"] == 8


def test_case_level_fields() -> None:
    report = lesion_report(sagittal_image(two_lesions()), case_id="sub-01")
    voxel_cm3 = 0.5 * 0.6 * 3.3 / 1000
    assert report["case_id"] == "sub-01"
    assert report["disclaimer"] == DISCLAIMER and "not for clinical use" in DISCLAIMER
    assert report["overall_type_key"] == "ependymoma"
    assert report["total_volume_cm3"] == pytest.approx(192 * voxel_cm3)
    assert report["type_volumes_cm3"] == pytest.approx(
        {
            "meningioma": 0.0,
            "ependymoma": 170 * voxel_cm3,
            "astrocytoma": 10 * voxel_cm3,
            "hemangioblastoma": 12 * voxel_cm3,
        }
    )
    assert report["type_probability_source"] == "voxel_share"
    empty = lesion_report(sagittal_image(np.zeros((4, 5, 6), dtype=np.uint8)))
    assert (empty["overall_type_key"], empty["lesion_count"], empty["total_volume_cm3"]) == ("none", 0, 0.0)


@pytest.mark.parametrize("channels", [5, 4])
def test_type_probability_is_the_mean_probability_of_the_reported_type(channels: int) -> None:
    array = two_lesions()
    probabilities = np.zeros((5, *array.shape), dtype=np.float32)
    probabilities[2][array > 0] = np.linspace(0.5, 0.9, int(np.count_nonzero(array)))
    probabilities[4][array == 4] = 0.7
    given = probabilities if channels == 5 else probabilities[1:]
    report = lesion_report(sagittal_image(array), probabilities=given)
    lesion_b, lesion_a = report["lesions"]
    mask_a = np.zeros(array.shape, dtype=bool)
    mask_a[2:5, 10:20, 5:11] = True
    assert lesion_a["type_probability"] == pytest.approx(float(probabilities[2][mask_a].mean()), rel=1e-6)
    assert lesion_b["type_probability"] == pytest.approx(0.7)
    assert report["type_probability_source"] == "mean_probability"


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues)."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = math.radians(degrees)
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def test_extent_on_an_oblique_image_matches_the_voxel_corners() -> None:
    array = np.zeros((6, 10, 12), dtype=np.uint8)
    array[2:4, 3:6, 4:5] = 1  # 2 x 3 x 1 voxels (k, j, i)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.9, 3.0))
    image.SetDirection(tuple(rotation(np.array([1.0, 2.0, 0.5]), 30.0).ravel()))
    image.SetOrigin((-5.0, 7.0, 2.0))
    corners = np.array([
        image.TransformContinuousIndexToPhysicalPoint((i, j, k))
        for i, j, k in product((3.5, 4.5), (2.5, 5.5), (1.5, 3.5))
    ])
    expected = corners.max(axis=0) - corners.min(axis=0)
    lesion = lesion_report(image)["lesions"][0]
    extent = lesion["extent_mm"]
    measured = [extent["left_right"], extent["anterior_posterior"], extent["superior_inferior"]]
    assert measured == pytest.approx(list(expected))
    assert lesion["volume_cm3"] == pytest.approx(6 * 0.7 * 0.9 * 3.0 / 1000)
    centre = image.TransformContinuousIndexToPhysicalPoint((4.0, 4.0, 2.5))
    assert lesion["centroid_lps_mm"] == pytest.approx(list(centre))


def test_bad_inputs() -> None:
    array = two_lesions()
    with pytest.raises(BATsegError, match="do not match"):
        lesion_report(sagittal_image(array), probabilities=np.zeros((5, 2, 2, 2)))
    with pytest.raises(BATsegError, match="integer"):
        lesion_report(sagittal_image(array.astype(np.float32)))


def test_write_report_json_and_csv_atomically(tmp_path: Path) -> None:
    report = lesion_report(sagittal_image(two_lesions()), case_id="sub-01")
    json_path, csv_path = tmp_path / "out" / "report.json", tmp_path / "out" / "report.csv"
    write_report(report, json_path, csv_path)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(report))
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lesion_id"] for row in rows] == ["1", "2"]
    assert rows[1]["type_key"] == "ependymoma"
    assert float(rows[1]["volume_cm3"]) == pytest.approx(report["lesions"][1]["volume_cm3"], abs=1e-6)
    assert float(rows[1]["extent_left_right_mm"]) == pytest.approx(9.9)
    assert (rows[1]["slice_first"], rows[1]["slice_last"]) == ("3", "5")
    # No temporary file is left behind.
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["report.csv", "report.json"]
    with pytest.raises(BATsegError, match="already exists"):
        write_report(report, json_path, tmp_path / "other.csv")
    assert not (tmp_path / "other.csv").exists()
    empty = lesion_report(sagittal_image(np.zeros((3, 4, 5), dtype=np.uint8)))
    write_report(empty, json_path, csv_path, overwrite=True)
    with csv_path.open(newline="") as handle:
        (row,) = list(csv.DictReader(handle))  # a case without lesion still has its row
    assert (row["overall_type_key"], row["lesion_id"], row["volume_cm3"]) == ("none", "", "")


def test_csv_rows_carry_the_case_type_and_model(tmp_path: Path) -> None:
    report = lesion_report(sagittal_image(two_lesions()), case_id="sub-01")
    report["model"] = {"name": "m", "version": "1.2.3"}
    write_report(report, tmp_path / "r.json", tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["overall_type_name"] for row in rows} == {report["overall_type_name"]} != {"none"}
    assert {(row["model_name"], row["model_version"]) for row in rows} == {("m", "1.2.3")}


def test_every_type_probability_and_the_mixed_type_flag() -> None:
    array = two_lesions()  # lesion A: 170 ependymoma + 10 astrocytoma voxels; lesion B: 12 hemangioblastoma
    probabilities = np.zeros((4, *array.shape), dtype=np.float32)
    probabilities[0][array > 0] = 0.1
    probabilities[1][array > 0] = 0.6
    probabilities[2][array > 0] = 0.2
    probabilities[3][array == 4] = 0.9
    report = lesion_report(sagittal_image(array), probabilities=probabilities)
    lesion_b, lesion_a = report["lesions"]
    assert lesion_a["type_probabilities"] == pytest.approx(
        {"meningioma": 0.1, "ependymoma": 0.6, "astrocytoma": 0.2, "hemangioblastoma": 0.0})
    assert lesion_a["type_probability"] == lesion_a["type_probabilities"]["ependymoma"]
    assert lesion_a["type_voxel_shares"] == pytest.approx(
        {"meningioma": 0.0, "ependymoma": 170 / 180, "astrocytoma": 10 / 180, "hemangioblastoma": 0.0})
    assert (lesion_a["mixed_types"], lesion_a["types_present"]) == (True, ["ependymoma", "astrocytoma"])
    assert (lesion_b["mixed_types"], lesion_b["types_present"]) == (False, ["hemangioblastoma"])
    assert lesion_b["type_probabilities"]["hemangioblastoma"] == pytest.approx(0.9)
    assert report["mixed_type_lesions"] == 1
    # Without probabilities the per-type figures are the voxel shares, as the source says.
    plain = lesion_report(sagittal_image(array))["lesions"][1]
    assert plain["type_probabilities"] == pytest.approx(plain["type_voxel_shares"])
    assert plain["cord_location"] == "unknown" and plain["cord_overlap_fraction"] is None


def test_inside_or_outside_the_cord_from_a_given_mask() -> None:
    array = two_lesions()
    cord = np.zeros(array.shape, dtype=np.uint8)
    cord[:, :, 4:12] = 1  # covers lesion A (i 5-10) entirely, lesion B (i 20-21) not at all
    report = lesion_report(sagittal_image(array), cord_mask=cord)
    lesion_b, lesion_a = report["lesions"]
    assert (lesion_a["cord_location"], lesion_a["cord_overlap_fraction"]) == ("inside_cord", 1.0)
    assert (lesion_b["cord_location"], lesion_b["cord_overlap_fraction"]) == ("outside_cord", 0.0)
    assert report["cord_mask"] is True and list(report)[-1] == "lesions"
    cord[:, :, 4:8] = 0  # lesion A now 3 of its 6 columns inside: half, the threshold, counts as inside
    half = lesion_report(sagittal_image(array), cord_mask=cord)["lesions"][1]
    assert half["cord_overlap_fraction"] == pytest.approx(0.5) and half["cord_location"] == "inside_cord"
    with pytest.raises(BATsegError, match="not on the label image's grid"):
        lesion_report(sagittal_image(array), cord_mask=cord[:, :, :10])


def test_csv_holds_the_per_type_probabilities_mixed_flag_and_cord_columns(tmp_path: Path) -> None:
    cord = np.zeros(two_lesions().shape, dtype=np.uint8)
    cord[:, :, 4:12] = 1
    report = lesion_report(sagittal_image(two_lesions()), case_id="sub-01", cord_mask=cord)
    write_report(report, tmp_path / "r.json", tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["mixed_types"], r["cord_location"], r["cord_overlap_fraction"]) for r in rows] == [
        ("no", "outside_cord", "0.0"), ("yes", "inside_cord", "1.0")]
    assert float(rows[1]["probability_astrocytoma"]) == pytest.approx(10 / 180, abs=1e-6)
