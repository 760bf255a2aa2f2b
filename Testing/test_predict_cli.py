"""`batseg predict` end to end: outputs and their grids, folder / DICOM inputs, postprocessing switches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main
from batseg.inference.pipeline import PredictOptions, postprocess_labels
from batseg.model_file import read_manifest
from batseg.postprocess import postprocess
from dicom_helpers import int16_image, write_dicom_series
from inference_helpers import (
    PIR_DIRECTION,
    cache_dir,
    light_model,
    make_image,
    rotation,
    sagittal_image,
    smooth_volume,
    work_dir,
)


@pytest.fixture(autouse=True)
def shared_cache(monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))


def predict(*args: str) -> int:
    return main(["predict", "--model", str(light_model()), *args])


def events(text: str) -> list[dict]:
    return [json.loads(line[len("BATSEG "):]) for line in text.splitlines() if line.startswith("BATSEG ")]


def test_single_file_writes_every_output_on_the_input_grid(tmp_path: Path, capfd) -> None:
    image = sagittal_image((9, 70, 64), seed=11, oblique_degrees=8.0)
    source = tmp_path / "sub-01.nii.gz"
    sitk.WriteImage(image, str(source))
    out = tmp_path / "out"
    status = predict("-i", str(source), "-o", str(out), "--save-probabilities", "--save-field", "--progress", "json")
    captured = capfd.readouterr()
    assert status == 0, captured.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "sub-01.field.nii.gz", "sub-01.nii.gz", "sub-01.probabilities.nii.gz", "sub-01.report.csv", "sub-01.report.json",
    ]
    original = sitk.ReadImage(str(source))
    labels = sitk.ReadImage(str(out / "sub-01.nii.gz"))
    assert labels.GetPixelID() == sitk.sitkUInt8 and labels.GetSize() == original.GetSize()
    for written in (labels, sitk.ReadImage(str(out / "sub-01.probabilities.nii.gz")), sitk.ReadImage(str(out / "sub-01.field.nii.gz"))):
        np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)
    probabilities = sitk.ReadImage(str(out / "sub-01.probabilities.nii.gz"))
    assert probabilities.GetNumberOfComponentsPerPixel() == 4 and probabilities.GetPixelID() == sitk.sitkVectorFloat32
    assert sitk.ReadImage(str(out / "sub-01.field.nii.gz")).GetNumberOfComponentsPerPixel() == 4
    report = json.loads((out / "sub-01.report.json").read_text())
    assert report["case_id"] == "sub-01" and report["model"]["name"] == "untrained-light"
    model_manifest = read_manifest(light_model())
    # The report says what this model was trained on (here: random weights), not a fixed text.
    assert report["disclaimer"] == model_manifest["disclaimer"] and "not for clinical use" in report["disclaimer"]
    assert report["model"]["weights_sha256"] == model_manifest["weights_sha256"]
    assert report["lesion_count"] == len(report["lesions"])
    seen = events(captured.out)
    result = [e for e in seen if e["event"] == "result"]
    assert len(result) == 1 and result[0]["outputs"]["labels"] == str(out / "sub-01.nii.gz")
    for stage in ("read", "preprocess", "predict", "resample back", "postprocess", "report", "write", "total"):
        assert result[0]["timings"][stage] >= 0
    warnings = [e for e in seen if e["event"] == "log" and "not for clinical use" in e["message"]]
    assert len(warnings) == 1


def test_folder_input_segments_each_image_and_reports_the_bad_one(tmp_path: Path, capfd) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sitk.WriteImage(sagittal_image((8, 40, 40), seed=1), str(folder / "a_0000.nii.gz"))  # nnU-Net's naming
    sitk.WriteImage(sagittal_image((8, 48, 40), seed=2), str(folder / "b.nrrd"))
    sitk.WriteImage(make_image(np.full((8, 40, 40), 5, np.int16)), str(folder / "c.mha"))
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    status = predict("-i", str(folder), "-o", str(out), "--progress", "quiet")
    captured = capfd.readouterr()
    assert status == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "a.nii.gz", "a.report.csv", "a.report.json", "b.nii.gz", "b.report.csv", "b.report.json",
    ]
    errors = [line for line in captured.err.splitlines() if line.startswith("batseg: error:")]
    assert len(errors) == 2 and "c:" in errors[0] and "constant" in errors[0]
    assert "1 of 3 cases failed (c)" in errors[1]  # the summary comes last
    assert sitk.ReadImage(str(out / "b.nii.gz")).GetSize() == (40, 48, 8)


def oblique_dicom(folder: Path) -> sitk.Image:
    direction = rotation(0, 7.0) @ np.asarray(PIR_DIRECTION).reshape(3, 3)
    image = int16_image(smooth_volume((7, 44, 40), seed=3), (0.55, 0.5, 3.6), direction)
    write_dicom_series(image, folder)
    return image


def test_dicom_series_folder_dicomdir_and_single_file(tmp_path: Path) -> None:
    series = tmp_path / "patient7"
    oblique_dicom(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
    original = reader.Execute()
    (series / "DICOMDIR").write_bytes(b"")  # a DICOMDIR stands for its folder
    for given, out in ((series, tmp_path / "o1"), (series / "DICOMDIR", tmp_path / "o2"), (series / "IM0003.dcm", tmp_path / "o3")):
        assert predict("-i", str(given), "-o", str(out), "--progress", "quiet") == 0
        labels = sitk.ReadImage(str(out / "patient7.nii.gz"))
        assert labels.GetSize() == original.GetSize()
        np.testing.assert_allclose(labels.GetOrigin(), original.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(labels.GetSpacing(), original.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(labels.GetDirection(), original.GetDirection(), atol=1e-6)
        assert (out / "patient7.report.json").is_file()


def test_postprocessing_switches(tmp_path: Path) -> None:
    source = tmp_path / "case.nii.gz"
    sitk.WriteImage(sagittal_image((8, 56, 48), seed=12), str(source))
    raw_dir, none_dir, typed_dir = tmp_path / "raw", tmp_path / "none", tmp_path / "typed"
    assert predict("-i", str(source), "-o", str(raw_dir), "--no-postprocess", "--progress", "quiet") == 0
    assert predict("-i", str(source), "-o", str(none_dir), "--min-volume", "1e12", "--progress", "quiet") == 0
    assert predict("-i", str(source), "-o", str(typed_dir), "--one-type-per-lesion", "--min-volume", "0", "--progress", "quiet") == 0
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(raw_dir / "case.nii.gz")))
    assert raw.max() > 0  # random weights paint tumour classes
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(none_dir / "case.nii.gz"))).max() == 0
    assert json.loads((none_dir / "case.report.json").read_text())["lesion_count"] == 0
    typed = json.loads((typed_dir / "case.report.json").read_text())
    for lesion in typed["lesions"]:
        assert sum(v > 0 for v in lesion["type_volumes_cm3"].values()) == 1
    # Random weights are unsure of every voxel: a minimum of 0.999 removes the lesions 0 keeps, and
    # each lesion kept reports its mean tumour probability.
    assert typed["lesions"] and all(0 < lesion["tumour_probability"] < 0.999 for lesion in typed["lesions"])
    sure_dir = tmp_path / "sure"
    assert predict("-i", str(source), "-o", str(sure_dir), "--min-volume", "0", "--min-tumour-probability", "0.999",
                   "--progress", "quiet") == 0
    sure = json.loads((sure_dir / "case.report.json").read_text())
    assert sure["lesion_count"] == 0 and sure["settings"]["min_tumour_probability"] == 0.999
    assert sure["settings"]["min_tumour_probability_from"] == "option"


def test_a_minimum_enhancement_compares_each_lesion_with_the_cord(tmp_path: Path) -> None:
    """The shipped model on a smooth noise volume with a cord mask given: each lesion reports its
    median signal over the cord's, and a minimum of 5 (no lesion here is 5 times the cord) removes
    every lesion that 0 keeps."""
    source = tmp_path / "case.nii.gz"
    image = sagittal_image((8, 56, 48), seed=12)
    sitk.WriteImage(image, str(source))
    mask = sitk.GetImageFromArray((np.arange(56)[None, :, None] < 28).repeat(8, 0).repeat(48, 2).astype(np.uint8))
    mask.CopyInformation(image)
    sitk.WriteImage(mask, str(tmp_path / "cord.nii.gz"))
    runs = {}
    for name, least in (("flat", "0"), ("bright", "5")):
        assert main(["predict", "-i", str(source), "-o", str(tmp_path / name), "--min-volume", "0", "--min-enhancement",
                     least, "--cord-masks", str(tmp_path / "cord.nii.gz"), "--no-crop", "--progress", "quiet"]) == 0
        runs[name] = json.loads((tmp_path / name / "case.report.json").read_text())
    assert runs["flat"]["cord_signal"] > 0 and runs["flat"]["settings"]["min_enhancement_from"] == "option"
    assert runs["flat"]["lesions"] and all(0 < lesion["enhancement"] < 5 for lesion in runs["flat"]["lesions"])
    assert runs["bright"]["lesion_count"] == 0 and runs["bright"]["settings"]["min_enhancement"] == 5.0
    # Without a cord (locator off, no mask) nothing can be compared: the lesions stay, and a warning says so.
    assert main(["predict", "-i", str(source), "-o", str(tmp_path / "nocord"), "--min-volume", "0", "--min-enhancement",
                 "5", "--no-cord-locator", "--no-crop", "--progress", "quiet"]) == 0
    unjudged = json.loads((tmp_path / "nocord" / "case.report.json").read_text())
    assert unjudged["cord_signal"] is None and unjudged["lesion_count"] == runs["flat"]["lesion_count"]
    assert any("minimum enhancement (5 times the cord) was not applied" in w for w in unjudged["warnings"])


def test_save_field_needs_a_field_head(tmp_path: Path, capfd) -> None:
    import torch

    from batseg.model_file import network_from_manifest, write_model_file
    from batseg.models import untrained_manifest

    manifest = untrained_manifest("light")
    manifest["architecture"]["field_head"] = None
    torch.manual_seed(0)
    baseline = write_model_file(work_dir() / "baseline.batseg", network_from_manifest(manifest).state_dict(), manifest, overwrite=True)
    source = tmp_path / "case.nii.gz"
    sitk.WriteImage(sagittal_image((8, 40, 40)), str(source))
    args = ["predict", "--model", str(baseline), "-i", str(source), "--progress", "quiet"]
    assert main(args + ["-o", str(tmp_path / "a"), "--save-field"]) == 2
    assert "no distance-field head" in capfd.readouterr().err
    assert main(args + ["-o", str(tmp_path / "b"), "--save-probabilities"]) == 0
    assert (tmp_path / "b" / "case.probabilities.nii.gz").is_file()


def test_postprocessing_the_tumour_box_equals_postprocessing_the_whole_map() -> None:
    rng = np.random.default_rng(0)
    for trial in range(6):
        labels = np.zeros((12, 60, 50), dtype=np.uint8)
        block = (rng.random((5, 20, 18)) < 0.55) * rng.integers(1, 5, (5, 20, 18))
        z, y, x = rng.integers(0, 7), rng.integers(0, 40), rng.integers(0, 32)
        labels[z : z + 5, y : y + 20, x : x + 18] = block
        labels[z + 2, y + 5 : y + 9, x + 5 : x + 9] = 0
        labels[z + 1 : z + 4, y + 4 : y + 10, x + 4] = 2  # walls around a hole
        image = make_image(labels, spacing=(0.5, 0.5, 3.3))
        probabilities = rng.random((4, *labels.shape)).astype(np.float32)
        for options in (PredictOptions(min_volume_mm3=5.0), PredictOptions(one_type_per_lesion=True), PredictOptions(postprocess=False)):
            ours = sitk.GetArrayFromImage(postprocess_labels(image, probabilities, options))
            whole = postprocess(
                labels, (3.3, 0.5, 0.5), probabilities, fill_holes=options.postprocess,
                min_volume_mm3=options.min_volume_mm3 if options.postprocess else 0.0,
                one_type_per_lesion=options.one_type_per_lesion,
            )
            np.testing.assert_array_equal(ours, whole, err_msg=f"trial {trial}, {options}")
