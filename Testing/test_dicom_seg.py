"""`batseg predict --dicom-seg`: the DICOM SEG read back with highdicom, frame by frame, against
the source series and the NIfTI label map; its segments' codes and colours against the Slicer
module's terminology; the refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import highdicom as hd  # noqa: E402  (a dependency: requirements.txt, pyproject.toml)
import pydicom  # noqa: E402  (installed with highdicom)

from batseg import dicom_seg  # noqa: E402
from batseg.cli import main  # noqa: E402
from batseg.labels import TUMOUR_CLASSES  # noqa: E402
from batseg.model_file import read_manifest  # noqa: E402
from dicom_helpers import int16_image, write_dicom_series  # noqa: E402
from inference_helpers import PIR_DIRECTION, cache_dir, light_model, rotation, sagittal_image, smooth_volume  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[1] / "BATsegSlicer"
FRAME_OF_REFERENCE = {"0020|0052": "1.2.826.0.1.3680043.2.1125.1.77"}  # scanners write it; SimpleITK does not


@pytest.fixture(autouse=True)
def shared_cache(monkeypatch) -> None:
    monkeypatch.setenv("BATSEG_CACHE_DIR", str(cache_dir()))


def predict(*args) -> int:
    return main(["predict", "--model", str(light_model()), "--device", "cpu", *map(str, args)])


def oblique_series(folder: Path, shape=(7, 44, 40), degrees: float = 7.0, tags=FRAME_OF_REFERENCE) -> sitk.Image:
    """An oblique sagittal int16 DICOM series (0.55 x 0.5 mm pixels, 3.6 mm slices), as read back."""
    direction = rotation(0, degrees) @ np.asarray(PIR_DIRECTION).reshape(3, 3)
    write_dicom_series(int16_image(smooth_volume(shape, seed=3), (0.55, 0.5, 3.6), direction), folder,
                       extra_tags=dict(tags))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def sources_by_uid(folder: Path) -> dict[str, pydicom.Dataset]:
    datasets = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
    return {str(ds.SOPInstanceUID): ds for ds in datasets}


def test_the_seg_lies_on_the_source_series_frame_by_frame(tmp_path: Path, capfd) -> None:
    series, out = tmp_path / "patient7", tmp_path / "out"
    image = oblique_series(series)
    assert predict("-i", series, "-o", out, "--dicom-seg", "--min-volume", "0", "--progress", "quiet") == 0
    capfd.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [
        "patient7.nii.gz", "patient7.report.csv", "patient7.report.json", "patient7.seg.dcm",
    ]
    labels = sitk.ReadImage(str(out / "patient7.nii.gz"))
    label_array = sitk.GetArrayFromImage(labels)
    assert label_array.any()  # random weights paint tumour: there is something to compare
    seg = hd.seg.segread(out / "patient7.seg.dcm")
    sources = sources_by_uid(series)
    source = next(iter(sources.values()))
    # Identity: a SEG of this patient's study, referencing this series.
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.Modality == "SEG"
    assert (seg.StudyInstanceUID, seg.PatientID, seg.FrameOfReferenceUID) == (
        source.StudyInstanceUID, source.PatientID, source.FrameOfReferenceUID)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.SegmentationType == "BINARY" and seg.ContentDescription == dicom_seg.CONTENT_DESCRIPTION
    assert seg.SeriesDescription == f"BATseg {read_manifest(light_model())['name']} {read_manifest(light_model())['version']}"
    assert int(seg.SeriesNumber) == 1000 + int(source.get("SeriesNumber") or 0)
    # Geometry: the SEG's orientation and pixel spacing are the series'.
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                               [float(v) for v in source.ImageOrientationPatient], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                               [float(v) for v in source.PixelSpacing], atol=1e-6)
    assert float(shared.PixelMeasuresSequence[0].SpacingBetweenSlices) == pytest.approx(3.6, abs=1e-3)
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns) == label_array.shape[1:]
    # Every frame: its source image, its position, and pixels equal to the NIfTI labels of that slice.
    slice_of = {}
    for k in range(image.GetDepth()):
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        uid = next(u for u, ds in sources.items()
                   if np.allclose([float(v) for v in ds.ImagePositionPatient], position, atol=1e-3))
        slice_of[uid] = k
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    painted = set()
    for frame, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        k = slice_of[uid]
        np.testing.assert_allclose([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
                                   [float(v) for v in sources[uid].ImagePositionPatient], atol=1e-4)
        np.testing.assert_array_equal(pixels[frame] > 0, label_array[k] == segment)
        painted.add((segment, k))
    # Empty frames are omitted, and no painted slice is missing.
    expected = {(value, k) for k in range(label_array.shape[0]) for value in range(1, 5) if (label_array[k] == value).any()}
    assert painted == expected
    # highdicom's own reconstruction by source instance agrees.
    uids = sorted(slice_of, key=slice_of.get)
    rebuilt = seg.get_pixels_by_source_instance(uids, combine_segments=True, ignore_spatial_locations=False)
    np.testing.assert_array_equal(rebuilt, label_array)


def test_segments_carry_the_slicer_module_codes_names_and_colours(tmp_path: Path, capfd) -> None:
    sys.path.insert(0, str(MODULE_DIR))
    try:
        from BATsegSlicerLib import terminology
    finally:
        sys.path.remove(str(MODULE_DIR))
    # The engine and the module use one table of codes (batseg.labels).
    for name in ("CATEGORY", "NEOPLASM", "SPINAL_CORD"):
        ours, theirs = getattr(dicom_seg, name), getattr(terminology, name)
        assert (ours.value, ours.meaning, ours.scheme) == (theirs.value, theirs.meaning, theirs.scheme)
    assert dicom_seg.PRIVATE_SCHEME == terminology.PRIVATE_SCHEME
    for table in ("TYPE_BY_CLASS_KEY", "MODIFIER_BY_CLASS_KEY"):
        ours, theirs = getattr(dicom_seg, table), getattr(terminology, table)
        assert {k: (c.value, c.meaning, c.scheme) for k, c in ours.items()} == {
            k: (c.value, c.meaning, c.scheme) for k, c in theirs.items()}
    series, out = tmp_path / "s", tmp_path / "out"
    oblique_series(series)
    assert predict("-i", series, "-o", out, "--dicom-seg", "--progress", "quiet") == 0
    capfd.readouterr()
    seg = hd.seg.segread(out / "s.seg.dcm")
    manifest = json.loads((out / "s.report.json").read_text())["model"]
    context = terminology.context_document()["SegmentationCodes"]["Category"][0]
    slicer_rgb = {}
    for entry in context["Type"]:
        for item in [entry, *entry.get("Modifier", [])]:
            if "recommendedDisplayRGBValue" in item:
                slicer_rgb[item["3dSlicerLabel"]] = tuple(item["recommendedDisplayRGBValue"])
    assert seg.segment_numbers == [1, 2, 3, 4]
    for tumour in TUMOUR_CLASSES:
        item = seg.get_segment_description(tumour.value)
        assert item.segment_label == tumour.name
        category, kind = item.SegmentedPropertyCategoryCodeSequence[0], item.SegmentedPropertyTypeCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == (terminology.CATEGORY.value, "SCT")
        expected = terminology.TYPE_BY_CLASS_KEY[tumour.key]
        assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == (expected.value, expected.scheme, expected.meaning)
        modifier = terminology.MODIFIER_BY_CLASS_KEY.get(tumour.key)
        if modifier is None:
            assert "SegmentedPropertyTypeModifierCodeSequence" not in kind
        else:
            got = kind.SegmentedPropertyTypeModifierCodeSequence[0]
            assert (got.CodeValue, got.CodingSchemeDesignator, got.CodeMeaning) == (modifier.value, modifier.scheme, modifier.meaning)
        # Slicer's terminology parser would read this segment as the module's own class.
        text = "~".join(["ctx", f"SCT^{category.CodeValue}^x", f"{kind.CodingSchemeDesignator}^{kind.CodeValue}^x",
                         f"{modifier.scheme}^{modifier.value}^x" if modifier else "^^", "a", "SCT^2748008^x", "^^"])
        assert terminology.class_for_segment("renamed", text) == tumour
        region = item.AnatomicRegionSequence[0]
        assert (region.CodeValue, region.CodingSchemeDesignator) == (terminology.SPINAL_CORD.value, "SCT")
        # Colour: the module's 0-255 RGB, through CIELab and back.
        rgb = hd.color.CIELabColor.from_dicom_value(tuple(item.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.allclose(rgb, slicer_rgb[tumour.name], atol=1) and np.allclose(rgb, dicom_seg.display_rgb(tumour), atol=1)
        assert item.SegmentAlgorithmType == "AUTOMATIC" and item.SegmentAlgorithmName == manifest["name"]
        family = item.SegmentationAlgorithmIdentificationSequence[0]
        assert family.AlgorithmVersion == manifest["version"]
        parameters = family.AlgorithmParameters
        assert manifest["weights_sha256"] in parameters and "min_volume_mm3" in parameters


def test_a_case_without_lesion_keeps_four_empty_segments(tmp_path: Path, capfd) -> None:
    series, out = tmp_path / "healthy", tmp_path / "out"
    image = oblique_series(series, shape=(6, 40, 36))
    assert predict("-i", series, "-o", out, "--dicom-seg", "--min-volume", "1e12", "--progress", "quiet") == 0
    capfd.readouterr()
    seg = hd.seg.segread(out / "healthy.seg.dcm")
    assert seg.segment_numbers == [1, 2, 3, 4]
    assert int(seg.NumberOfFrames) == 4 * image.GetDepth() and not seg.pixel_array.any()
    assert json.loads((out / "healthy.report.json").read_text())["lesion_count"] == 0


def test_build_segmentation_refuses_a_label_map_off_the_series_grid(tmp_path: Path) -> None:
    from batseg.errors import BATsegError

    oblique_series(tmp_path / "s", shape=(5, 30, 28))
    files = sorted(str(p) for p in (tmp_path / "s").glob("*.dcm"))
    with pytest.raises(BATsegError, match="not on the source series' grid"):
        dicom_seg.build_segmentation(np.zeros((5, 28, 30), np.uint8), files, "s", {"name": "m"}, {}, 3.6)


def one_line_error(status: int, err: str, *words: str) -> None:
    lines = [line for line in err.strip().splitlines() if not line.startswith("batseg: warning:")]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("batseg: error:") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


def test_refusals_in_one_line_with_nothing_written(tmp_path: Path, capfd) -> None:
    nifti = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sagittal_image((8, 40, 40)), str(nifti))
    status = predict("-i", nifti, "-o", tmp_path / "o1", "--dicom-seg", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "--dicom-seg", "DICOM inputs")
    assert not (tmp_path / "o1").exists()
    # A series without FrameOfReferenceUID (required by the SEG IOD): the case fails, nothing is written.
    bare = tmp_path / "bare"
    oblique_series(bare, shape=(5, 30, 28), tags={})
    status = predict("-i", bare, "-o", tmp_path / "o2", "--dicom-seg", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "cannot write a DICOM SEG", "Frame Of Reference")
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
    # The SEG would join the input series' own folder.
    series = tmp_path / "tree" / "p1"
    oblique_series(series, shape=(5, 30, 28))
    status = predict("-i", tmp_path / "tree", "-o", series, "--dicom-seg", "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "holds the DICOM series")
    assert sorted(p.suffix for p in series.iterdir()) == [".dcm"] * 5


def test_a_mixed_folder_gets_a_seg_for_its_dicom_series_only(tmp_path: Path, capfd) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    oblique_series(folder / "series", shape=(5, 30, 28))
    sitk.WriteImage(sagittal_image((8, 40, 40)), str(folder / "scan.nii.gz"))
    assert predict("-i", folder, "-o", out, "--dicom-seg", "--progress", "bar") == 0
    err = capfd.readouterr().err
    assert "no DICOM SEG for 1 case(s) that are not DICOM series: scan" in err
    assert (out / "series.seg.dcm").is_file() and not (out / "scan.seg.dcm").exists()
    # The SEG is one of the case's outputs: an earlier SEG without --dicom-seg is refused like any other.
    status = predict("-i", folder, "-o", out, "--progress", "quiet")
    one_line_error(status, capfd.readouterr().err, "exists")
