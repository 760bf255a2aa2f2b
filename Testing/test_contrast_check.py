"""The image-based contrast check at the edges of what it can see: a field of view that ends at the
cord (zero wedges of a resliced slab), a located cord too short to crop to, and no cord at all.

Synthetic volumes and a stand-in locator: these tests say what the check does with a mask, not how
well the shipped locator finds one (test_cord_locator.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg import acquisition
from batseg.cord_locator import locate
from batseg.cord_locator.contrast_check import T2_RATIO, outside_field, shell_ratio
from batseg.inference.case_cord import CONTRAST_UNCHECKED, find_case_cord
from batseg.io import Case
from inference_helpers import cord_in_canal

SILENT = acquisition.Acquisition(source="no metadata")


def test_zeros_reaching_the_border_are_outside_the_field_and_enclosed_zeros_are_not() -> None:
    volume = np.ones((5, 20, 20), np.float32)
    volume[:, :4, :] = 0  # a wedge outside the field, touching the border
    volume[2, 10, 10] = 0  # a clipped voxel inside the tissue
    outside = outside_field(volume)
    assert outside[:, :4, :].all() and not outside[2, 10, 10] and outside.sum() == 5 * 4 * 20


def test_a_t2_canal_at_the_edge_of_a_tilted_field_still_reads_t2() -> None:
    volume, mask = cord_in_canal(fluid=250.0)
    # Most of the field is a zero wedge that starts right above and below a short piece of cord,
    # as on an axial slab resliced to a sagittal grid.
    volume[:, :26, :] = 0
    volume[:, 34:, :] = 0
    piece = mask.copy()
    piece[:, :26, :] = piece[:, 34:, :] = False
    ratio = shell_ratio(volume, piece, (1.0, 1.0, 1.0))
    assert ratio is not None and ratio > T2_RATIO


def _short_cord_locator(monkeypatch: pytest.MonkeyPatch, mask: np.ndarray | None) -> None:
    """The locator answers `mask` (None: nothing found) with a length share too short to trust."""
    def fake(image: sitk.Image, path: object = None) -> locate.LocatedCord:
        found = np.zeros(sitk.GetArrayViewFromImage(image).shape, bool) if mask is None else mask
        return locate.LocatedCord(found, "stand-in locator", 0.2 if mask is not None else 0.0)

    monkeypatch.setattr(locate, "locate_cord", fake)


def _case(tmp_path: Path, volume: np.ndarray) -> tuple[Case, sitk.Image]:
    image = sitk.GetImageFromArray(volume)
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(image, str(path))
    return Case("scan", path, "file"), image


@pytest.mark.parametrize("fluid, t2", [(250.0, True), (30.0, False)])
def test_an_untrusted_piece_of_cord_serves_the_contrast_check_but_not_the_crop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fluid: float, t2: bool) -> None:
    volume, mask = cord_in_canal(fluid=fluid)
    piece = mask.copy()
    piece[:, 12:, :] = False
    _short_cord_locator(monkeypatch, piece)
    case, image = _case(tmp_path, volume)
    cord = find_case_cord(case, image, None, True, SILENT)
    assert cord.mask is None and cord.source is None  # no crop, no inside/outside field
    assert cord.contrast["looks_t2"] is t2 and cord.contrast["cord_trusted"] is False
    assert any("T2-weighted" in w for w in cord.warnings) is t2 and CONTRAST_UNCHECKED not in cord.warnings


def test_no_cord_to_measure_says_the_contrast_was_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume, _ = cord_in_canal(fluid=250.0)
    _short_cord_locator(monkeypatch, None)
    case, image = _case(tmp_path, volume)
    cord = find_case_cord(case, image, None, True, SILENT)
    assert cord.contrast is None and CONTRAST_UNCHECKED in cord.warnings


def test_metadata_that_names_the_contrast_needs_no_image_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume, _ = cord_in_canal(fluid=30.0)
    _short_cord_locator(monkeypatch, None)
    case, image = _case(tmp_path, volume)
    said_t1 = acquisition.Acquisition(source="DICOM", echo_time_ms=10.0, repetition_time_ms=500.0)
    assert CONTRAST_UNCHECKED not in find_case_cord(case, image, None, True, said_t1).warnings


def test_no_locator_asked_for_means_no_contrast_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume, _ = cord_in_canal(fluid=250.0)
    _short_cord_locator(monkeypatch, None)
    case, image = _case(tmp_path, volume)
    cord = find_case_cord(case, image, None, False, SILENT)
    assert cord.contrast is None and cord.warnings == []


def test_the_survey_script_counts_what_predict_would_say(tmp_path: Path) -> None:
    import importlib.util

    from batseg.phantoms.case import generate_case

    script = Path(__file__).resolve().parents[1] / "scripts" / "contrast_check_survey.py"
    spec = importlib.util.spec_from_file_location("contrast_check_survey", script)
    survey = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(survey)
    folder = tmp_path / "images"
    folder.mkdir()
    sitk.WriteImage(generate_case(57).image, str(folder / "t1_phantom.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 40, 40), np.float32)), str(folder / "blank.nii.gz"))
    (folder / "notes.txt").write_text("not an image")
    result = survey.survey_folder(folder)
    assert result["counts"]["images"] == 2 and result["counts"]["trusted"] == 1
    blank = next(r for r in result["cases"] if r["case"] == "blank.nii.gz")
    assert blank["cord"] == "none" and blank["unchecked"] and not blank["t2_warning"]
    phantom = next(r for r in result["cases"] if r["case"] == "t1_phantom.nii.gz")
    assert not phantom["t2_warning"] and phantom["ratio"] < 1.0
