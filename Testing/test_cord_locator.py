"""The shipped cord locator in use: it finds the cord on phantoms and real scans it was not trained
on, the contrast check tells T2 from T1 with its masks, and `batseg predict` uses it by default
(the cascade crop, the inside/outside-the-cord field, the contrast warning) unless told not to.

The real-scan tests read ../shared (skipped with the reason when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg import acquisition
from batseg.cord_locator.contrast_check import check_contrast
from batseg.cord_locator.locate import MIN_LENGTH_SHARE, locate_cord, shipped_locator_path
from batseg.cord_locator.locator_file import read_locator
from batseg.inference.case_cord import find_case_cord
from batseg.io import Case
from batseg.metrics import dice
from batseg.phantoms.case import generate_case
from inference_helpers import REAL_DATA, run_cli

needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real scans missing: {REAL_DATA}")


def _spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    return tuple(float(s) for s in reversed(image.GetSpacing()))  # type: ignore[return-value]


def test_the_shipped_locator_file_is_verified_and_says_what_it_is() -> None:
    manifest, _ = read_locator(shipped_locator_path())
    assert manifest["name"] == "cord-locator-synthetic" and "not for clinical use" in manifest["disclaimer"]
    assert set(manifest["training"]["held_out"]) >= {"sct_t1w", "errsm_24"}


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_it_finds_the_cord_of_unseen_phantoms(seed: int) -> None:
    case = generate_case(seed)  # seeds of no training set (those are 2026 and 7, drawn per case)
    located = locate_cord(case.image)
    truth = sitk.GetArrayFromImage(case.cord) > 0
    assert located.plausible and located.length_share >= MIN_LENGTH_SHARE
    assert dice(located.mask, truth) > 0.6


# Cervical and thoracic fields of view: on lumbar ones below the conus the locator marks the dural
# sac and the check can call T1 "T2" (seed 56 does; 2 of 40 held-out phantoms, docs/cord_locator.md).
@pytest.mark.parametrize("seed", [55, 57, 58])
def test_t1_phantoms_get_no_contrast_warning(tmp_path: Path, seed: int) -> None:
    case = generate_case(seed)
    path = tmp_path / "t1.nii.gz"
    sitk.WriteImage(case.image, str(path))
    cord = find_case_cord(Case("t1", path, "file"), case.image, None, True, acquisition.Acquisition(source="none"))
    assert cord.mask is None or not cord.contrast["looks_t2"]
    assert not any("T2-weighted" in w for w in cord.warnings)


def _real_t2_case(tmp_path: Path) -> tuple[Case, sitk.Image]:
    image = sitk.ReadImage(str(REAL_DATA / "spinalcordtoolbox_2014/errsm_24/t2.nii.gz"))
    path = tmp_path / "t2.nii.gz"
    sitk.WriteImage(image, str(path))
    return Case("t2", path, "file"), image


@needs_real
def test_a_real_t2_scan_without_metadata_gets_the_contrast_warning(tmp_path: Path) -> None:
    case, image = _real_t2_case(tmp_path)
    cord = find_case_cord(case, image, None, True, acquisition.Acquisition(source="no metadata"))
    assert cord.contrast["looks_t2"] and any("T2-weighted" in w for w in cord.warnings)


@needs_real
def test_metadata_that_names_the_contrast_silences_the_image_check(tmp_path: Path) -> None:
    case, image = _real_t2_case(tmp_path)
    said_t1 = acquisition.Acquisition(source="DICOM", echo_time_ms=10.0, repetition_time_ms=500.0)
    assert acquisition.weighting(said_t1) == acquisition.T1
    cord = find_case_cord(case, image, None, True, said_t1)
    assert cord.contrast["looks_t2"] and not cord.warnings  # recorded in the report, not warned


def test_a_user_mask_is_used_instead_of_the_locator(tmp_path: Path) -> None:
    case = generate_case(101)
    image_path, mask_path = tmp_path / "c.nii.gz", tmp_path / "c_seg.nii.gz"
    sitk.WriteImage(case.image, str(image_path))
    sitk.WriteImage(case.cord, str(mask_path))
    cord = find_case_cord(Case("c", image_path, "file"), case.image, tmp_path, True,
                          acquisition.Acquisition(source="no metadata"))
    assert cord.source == "file" and cord.file == mask_path
    assert np.array_equal(cord.mask, sitk.GetArrayFromImage(case.cord) > 0)


def test_a_blank_volume_gives_no_trusted_cord() -> None:
    image = sitk.GetImageFromArray(np.full((12, 200, 200), 100.0, np.float32))
    image.SetSpacing((0.6, 0.6, 3.5))
    image.SetDirection((0, 0, -1, 1, 0, 0, 0, -1, 0))  # sagittal (PIR)
    assert not locate_cord(image).plausible


def test_predict_uses_the_locator_and_crop_by_default_and_not_when_told(tmp_path: Path) -> None:
    case = generate_case(101, tumour_types=[2])
    path = tmp_path / "case.nii.gz"
    sitk.WriteImage(case.image, str(path))
    reports = {}
    for name, extra in (("default", []), ("no-crop", ["--no-crop"]), ("off", ["--no-crop", "--no-cord-locator"])):
        done = run_cli("predict", "-i", str(path), "-o", str(tmp_path / name), "--progress", "quiet", *extra,
                       timeout=300)
        assert done.returncode == 0, done.stderr
        reports[name] = json.loads((tmp_path / name / "case.report.json").read_text())
    assert reports["default"]["cord_mask_source"].startswith("cord-locator-synthetic")
    assert reports["default"]["settings"]["crop_margin_mm"] == 25.0
    assert reports["default"]["contrast_check"]["looks_t2"] is False
    assert reports["no-crop"]["settings"]["crop_margin_mm"] is None and reports["no-crop"]["cord_mask_source"]
    assert reports["off"]["cord_mask_source"] is None and reports["off"]["contrast_check"] is None
    assert reports["off"]["settings"]["cord_locator"] is False


@needs_real
@pytest.mark.parametrize("name, subject", [("errsm_24", "spinalcordtoolbox_2014/errsm_24/t2"),
                                           ("errsm_11", "spinalcordtoolbox_2014/errsm_11/t2")])
def test_it_finds_the_cord_of_real_t2_scans_and_calls_them_t2(name: str, subject: str) -> None:
    # errsm_24 is held out of the locator's training; errsm_11 was a training background.
    image = sitk.ReadImage(str(REAL_DATA / f"{subject}.nii.gz"), sitk.sitkFloat32)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL_DATA / f"{subject}_manual_segmentation.nii.gz"))) > 0.5
    located = locate_cord(image)
    assert located.plausible and dice(located.mask, truth) > 0.8
    check = check_contrast(sitk.GetArrayFromImage(image), located.mask, _spacing_zyx(image))
    assert check.looks_t2


@needs_real
def test_the_real_t1_scan_is_not_called_t2() -> None:
    image = sitk.ReadImage(str(REAL_DATA / "sct_testing_data/t1/t1w.nii.gz"), sitk.sitkFloat32)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL_DATA / "sct_testing_data/t1/t1w_seg-manual.nii.gz"))) > 0.5
    assert not check_contrast(sitk.GetArrayFromImage(image), truth, _spacing_zyx(image)).looks_t2
    located = locate_cord(image)
    if located.plausible:
        assert not check_contrast(sitk.GetArrayFromImage(image), located.mask, _spacing_zyx(image)).looks_t2


def test_onnx_runtime_and_torch_give_the_same_probabilities() -> None:
    from batseg.cord_locator.locate import cached_locator, cord_probability_torch
    from batseg.cord_locator.locator_file import read_locator
    from batseg.cord_locator.onnx_runner import cord_probability_onnx, onnx_session
    from batseg.cord_locator.planes import image_planes, pad_to_multiple

    path = shipped_locator_path()
    session = onnx_session(path, read_locator(path)[0])
    assert session is not None
    planes = image_planes(generate_case(202).image).planes
    padded, (rows, cols) = pad_to_multiple(planes)
    by_onnx = cord_probability_onnx(session, padded)[:, :rows, :cols]
    by_torch = cord_probability_torch(cached_locator(str(path.resolve()))[0], padded)[:, :rows, :cols]
    assert np.abs(by_onnx - by_torch).max() < 1e-3


def test_a_tampered_onnx_cache_entry_is_not_used(tmp_path: Path, monkeypatch) -> None:
    from batseg.cord_locator.locator_file import read_locator
    from batseg.cord_locator.onnx_runner import cache_path, export_source, onnx_session
    from batseg.inference.backends import read_cached_onnx

    monkeypatch.setenv("BATSEG_CACHE_DIR", str(tmp_path))
    path = shipped_locator_path()
    manifest = read_locator(path)[0]
    assert onnx_session(path, manifest) is not None
    entry = cache_path(export_source(manifest))
    good = entry.read_bytes()
    entry.write_bytes(b"\x08\x07planted" + good[9:])  # same size, other bytes
    assert onnx_session(path, manifest) is not None  # exported again, not served
    data, _ = read_cached_onnx(entry, export_source(manifest))
    assert data is not None and b"planted" not in data
