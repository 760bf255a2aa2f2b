"""Export for retraining: correction, nnU-Net layout, provenance, no overwrite, all-or-nothing.

A segmentation is built as a BATseg run would leave it (segments + stored AI output), a
reviewer's correction is simulated by painting voxels, and the export is checked with
nnU-Net's own integrity check, read back with SimpleITK and slicerio, exported twice, and made
to fail half-way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from batseg.errors import BATsegError
from batseg.labels import NNUNET_LABELS
from BATsegSlicerLib import export
from BATsegSlicerLib.ai_output import remember_ai_output
from BATsegSlicerLib.segmentation import create_tumour_segmentation
from slicer_test_support import write_synthetic_scan

MANIFEST = {"name": "batseg-test", "version": "1.2.3", "title": "Test model", "weights_sha256": "ab" * 32}


def _ai_labels(volume) -> np.ndarray:
    shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 12:22, 14:24] = 2  # ependymoma, 1000 voxels
    labels[30:35, 30:36, 30:37] = 4  # hemangioblastoma, 210 voxels
    return labels


def _ai_segmentation(mrml, volume):
    labels = _ai_labels(volume)
    node = create_tumour_segmentation(mrml.scene, volume, labels, "scan BATseg")
    remember_ai_output(node, volume, labels, MANIFEST)
    return node, labels


def _correct(node, volume, ai_labels) -> np.ndarray:
    """The reviewer: astrocytoma painted over 200 ependymoma voxels (overlap then cleared from the
    ependymoma, as 'overwrite other segments' does), 100 ependymoma voxels added elsewhere."""
    segmentation = node.GetSegmentation()
    ependymoma = segmentation.GetSegmentIdBySegmentName("Ependymoma")
    astrocytoma = segmentation.GetSegmentIdBySegmentName("Astrocytoma")
    astro = np.zeros_like(ai_labels)
    astro[10:12, 12:22, 14:24] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(astro, node, astrocytoma, volume)
    epen = (slicer.util.arrayFromSegmentBinaryLabelmap(node, ependymoma, volume) > 0).astype(np.uint8)
    epen[astro > 0] = 0  # clear the overlap
    epen[20:21, 12:22, 14:24] = 1  # 100 voxels grown below
    slicer.util.updateSegmentBinaryLabelmapFromArray(epen, node, ependymoma, volume)
    expected = ai_labels.copy()
    expected[expected == 2] = 0
    expected[epen > 0] = 2
    expected[astro > 0] = 3
    return expected


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_layout_integrity_and_provenance(mrml, volume, tmp_path):
    node, ai_labels = _ai_segmentation(mrml, volume)
    expected = _correct(node, volume, ai_labels)
    case = export.export_case(node, volume, str(tmp_path), reviewer="Dr Test")

    assert case.case_id == "batseg_0001"
    for role in ("image", "label", "segmentation", "ai_output", "provenance"):
        assert os.path.isfile(case.files[role]), role
    assert case.files["image"].endswith("imagesTr/batseg_0001_0000.nii.gz")

    # nnU-Net's own check of the raw dataset folder.
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(tmp_path), num_processes=1)
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert dataset["labels"] == NNUNET_LABELS and dataset["channel_names"] == {"0": "T1Gd"}
    assert dataset["numTraining"] == 1 and dataset["file_ending"] == ".nii.gz"

    # Files hold the volume's voxels and the reviewed labels on the same grid.
    label_image = sitk.ReadImage(case.files["label"])
    image = sitk.ReadImage(case.files["image"])
    assert np.array_equal(sitk.GetArrayFromImage(label_image), expected)
    assert np.array_equal(sitk.GetArrayFromImage(image), slicer.util.arrayFromVolume(volume))
    assert label_image.GetDirection() == image.GetDirection() and label_image.GetOrigin() == image.GetOrigin()
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(case.files["ai_output"])), ai_labels)

    # The .seg.nrrd keeps names; voxel counts per segment as slicerio reads them.
    import slicerio

    segmentation = slicerio.read_segmentation(case.files["segmentation"])
    counts = {}
    for segment in segmentation["segments"]:
        voxels = segmentation["voxels"]
        layer = voxels[segment.get("layer", 0)] if voxels.ndim == 4 else voxels
        counts[segment["name"]] = int(np.count_nonzero(layer == segment["labelValue"]))
    assert counts == {"Spinal meningioma": 0, "Ependymoma": 900, "Astrocytoma": 200, "Hemangioblastoma": 210}

    provenance = json.loads(Path(case.files["provenance"]).read_text())
    assert provenance["reviewer"] == "Dr Test"
    assert provenance["model"] == MANIFEST
    editing = provenance["editing"]
    assert editing["dice_ai_vs_reviewed"] == {
        "meningioma": None, "ependymoma": pytest.approx(2 * 800 / (1000 + 900)),
        "astrocytoma": 0.0, "hemangioblastoma": 1.0}
    assert editing["voxels_added"]["astrocytoma"] == 200 and editing["voxels_removed"]["ependymoma"] == 200
    assert editing["voxels_added"]["ependymoma"] == 100
    assert editing["changed_voxels"] == 300  # 200 relabelled + 100 added
    assert provenance["class_voxels"] == {"meningioma": 0, "ependymoma": 900, "astrocytoma": 200, "hemangioblastoma": 210}
    assert provenance["exported_at"].endswith("+00:00")
    assert provenance["files"]["label"] == "labelsTr/batseg_0001.nii.gz"


def test_second_export_is_a_new_case_and_nothing_is_overwritten(mrml, volume, tmp_path):
    node, ai_labels = _ai_segmentation(mrml, volume)
    first = export.export_case(node, volume, str(tmp_path))
    before = _tree(tmp_path)
    _correct(node, volume, ai_labels)
    second = export.export_case(node, volume, str(tmp_path))
    assert (first.case_id, second.case_id) == ("batseg_0001", "batseg_0002")
    after = _tree(tmp_path)
    for name, content in before.items():
        if name != "dataset.json":
            assert after[name] == content, f"{name} was changed by the second export"
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert dataset["numTraining"] == 2
    assert sorted(os.listdir(tmp_path / "labelsTr")) == ["batseg_0001.nii.gz", "batseg_0002.nii.gz"]
    # A case id is never reused, even if a case was deleted by hand.
    os.remove(tmp_path / "labelsTr" / "batseg_0002.nii.gz")
    assert export.next_case_id(str(tmp_path)) == "batseg_0003"


def test_failure_half_way_leaves_no_partial_case(mrml, volume, tmp_path, monkeypatch):
    node, _ = _ai_segmentation(mrml, volume)
    export.export_case(node, volume, str(tmp_path))
    before = _tree(tmp_path)

    def broken_writer(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(export, "write_segmentation", broken_writer)
    with pytest.raises(OSError, match="simulated"):
        export.export_case(node, volume, str(tmp_path))
    assert _tree(tmp_path) == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".batseg-export-")]


def test_failure_while_moving_rolls_back_moved_files(mrml, volume, tmp_path, monkeypatch):
    node, _ = _ai_segmentation(mrml, volume)
    calls = []
    real_move = export.move_no_clobber

    def move_then_fail(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise BATsegError("simulated clash")
        real_move(source, target)

    monkeypatch.setattr(export, "move_no_clobber", move_then_fail)
    with pytest.raises(BATsegError, match="simulated clash"):
        export.export_case(node, volume, str(tmp_path))
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
    assert len(calls) == 3


def test_segmentation_without_ai_output_exports_without_ai_fields(mrml, volume, tmp_path):
    node = create_tumour_segmentation(mrml.scene, volume, _ai_labels(volume), "manual")
    case = export.export_case(node, volume, str(tmp_path), reviewer="R")
    assert "ai_output" not in case.files and not (tmp_path / "aiTr").exists()
    assert case.provenance["model"] is None and case.provenance["editing"] is None


def test_ai_output_of_a_replaced_volume_is_neither_exported_nor_compared(mrml, volume, tmp_path):
    """The AI ran on one volume; the reviewer exports against another (reloaded larger, say):
    the stored AI output lies on the old grid, so no aiTr file and no editing effort."""
    node, _ = _ai_segmentation(mrml, volume)
    size = volume.GetImageData().GetDimensions()
    larger = write_synthetic_scan(tmp_path / "larger.nii.gz", seed=1, size=(size[0] + 4, size[1], size[2]))
    replaced = mrml.volumes.AddArchetypeVolume(str(larger), "larger", 0)
    case = export.export_case(node, replaced, str(tmp_path / "export"), reviewer="R")
    assert "ai_output" not in case.files and not (tmp_path / "export" / "aiTr").exists()
    assert case.provenance["editing"] is None
    assert case.provenance["model"] == MANIFEST  # the model that made the segments is still named
    label = sitk.ReadImage(case.files["label"])
    assert label.GetSize() == tuple(replaced.GetImageData().GetDimensions())
    assert case.provenance["class_voxels"] == {"meningioma": 0, "ependymoma": 1000, "astrocytoma": 0,
                                               "hemangioblastoma": 210}  # the segments, on the new grid


def test_folder_of_another_dataset_is_refused(mrml, volume, tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1},
                                                       "channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                                                       "numTraining": 0}))
    node, _ = _ai_segmentation(mrml, volume)
    with pytest.raises(BATsegError, match="describes another dataset"):
        export.export_case(node, volume, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["dataset.json"]


def test_overlap_refused_before_anything_is_written(mrml, volume, tmp_path):
    node, ai_labels = _ai_segmentation(mrml, volume)
    astro = np.zeros_like(ai_labels)
    astro[10:12, 12:22, 14:24] = 1  # painted over the ependymoma, overlap left in place
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        astro, node, node.GetSegmentation().GetSegmentIdBySegmentName("Astrocytoma"), volume)
    with pytest.raises(BATsegError, match="Ependymoma/Astrocytoma: 200 voxels"):
        export.export_case(node, volume, str(tmp_path))
    assert os.listdir(tmp_path) == []
