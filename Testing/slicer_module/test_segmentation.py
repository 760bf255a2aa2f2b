"""Label map -> segmentation node on a real MRML scene and a sagittal (PSR), anisotropic scan.

Checks: the four tumour segments exist (empty ones too) with their names, colours and
terminology; voxels land exactly where the label map put them (no resampling); the
segmentation's geometry equals the input's (IJK-to-RAS and dimensions), also for an oblique
volume; segments map back to classes by terminology and name; overlaps and unknown segments are
refused with counts; the placement under the input's study in the subject hierarchy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import slicer
import vtk

from batseg.errors import BATsegError
from batseg.labels import TUMOUR_CLASSES
from BATsegSlicerLib import terminology
from BATsegSlicerLib.segmentation import (
    check_no_overlap,
    create_tumour_segmentation,
    read_class_masks,
    segment_terminology,
)
from BATsegSlicerLib.storage import ijk_to_ras


def _labels_for(volume) -> np.ndarray:
    """A label map with classes 2 and 4 in known boxes (classes 1 and 3 absent)."""
    shape = tuple(reversed(volume.GetImageData().GetDimensions()))
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 12:22, 14:24] = 2  # 1000 voxels of ependymoma
    labels[30:35, 30:36, 30:37] = 4  # 210 voxels of hemangioblastoma
    return labels


def test_slicer_package_is_clean():
    """The test folder named 'slicer' must not have become part of the slicer package."""
    here = str(Path(__file__).resolve().parent)
    assert all(str(Path(p).resolve()) != here for p in slicer.__path__)


def test_four_segments_names_colours_terminology(mrml, volume):
    node = create_tumour_segmentation(mrml.scene, volume, _labels_for(volume), "scan BATseg")
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 4  # empty classes 1 and 3 are kept for correction
    for index, tumour in enumerate(TUMOUR_CLASSES):
        segment = segmentation.GetSegment(segmentation.GetNthSegmentID(index))
        assert segment.GetName() == tumour.name
        assert np.allclose(segment.GetColor(), tumour.color)
        codes = terminology.parse_terminology(segment_terminology(segment))
        assert codes["category"].value == "49755003"
        assert codes["region"].value == "2748008" and codes["region"].meaning == "Spinal cord"
        assert codes["type"] == terminology.TYPE_BY_CLASS_KEY[tumour.key]
        assert terminology.class_for_segment(segment.GetName(), segment_terminology(segment)) == tumour


def test_voxels_and_geometry_match_the_input_exactly(mrml, volume):
    labels = _labels_for(volume)
    node = create_tumour_segmentation(mrml.scene, volume, labels, "scan BATseg")
    for tumour in TUMOUR_CLASSES:
        segment_id = node.GetSegmentation().GetSegmentIdBySegmentName(tumour.name)
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume)
        assert np.array_equal(voxels > 0, labels == tumour.value), tumour.name
    # The segmentation's reference geometry is the input's, and its export lands on the same grid.
    exported = mrml.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert mrml.segmentations.ExportAllSegmentsToLabelmapNode(node, exported, 0)  # extent: reference geometry
    assert np.allclose(ijk_to_ras(exported), ijk_to_ras(volume), atol=1e-6)
    assert exported.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    geometry = node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    expected = slicer.vtkSegmentationConverter.SerializeImageGeometry(_matrix(volume), volume.GetImageData())
    assert geometry == expected


def test_oblique_volume_keeps_its_geometry(mrml):
    """A 20-degree oblique, anisotropic volume: voxels and matrix survive unchanged."""
    volume = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique")
    slicer.util.updateVolumeFromArray(volume, np.random.default_rng(0).normal(size=(11, 40, 30)).astype(np.float32))
    angle = np.deg2rad(20.0)
    matrix = np.array([[np.cos(angle) * 0.5, 0, np.sin(angle) * 3.3, 10.0],
                       [0, 0.5, 0, -20.0],
                       [-np.sin(angle) * 0.5, 0, np.cos(angle) * 3.3, 5.0],
                       [0, 0, 0, 1]])
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    labels = np.zeros((11, 40, 30), np.uint8)
    labels[3:6, 10:20, 5:15] = 3
    node = create_tumour_segmentation(mrml.scene, volume, labels, "oblique BATseg")
    astrocytoma = node.GetSegmentation().GetSegmentIdBySegmentName("Astrocytoma")
    assert np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(node, astrocytoma, volume) > 0, labels == 3)
    masks = read_class_masks(node, volume)
    assert np.array_equal(masks.label_array(), labels)


def test_mapping_by_name_and_terminology_not_by_label_value(mrml, volume):
    labels = _labels_for(volume)
    node = create_tumour_segmentation(mrml.scene, volume, labels, "scan BATseg")
    segmentation = node.GetSegmentation()
    # Reorder and rename as a reviewer might: values in a saved .seg.nrrd follow this order.
    ependymoma_id = segmentation.GetSegmentIdBySegmentName("Ependymoma")
    segmentation.GetSegment(ependymoma_id).SetName("ependymoma (checked)")
    segmentation.SetSegmentIndex(ependymoma_id, 3)
    masks = read_class_masks(node, volume)
    assert np.array_equal(masks.label_array(), labels)
    assert masks.segment_names[2] == ["ependymoma (checked)"]


def test_meningioma_and_hemangioblastoma_share_neoplasm_code_and_resolve_by_name():
    # Plain Neoplasm (as Slicer's DICOM list gives it): without this module's type modifier,
    # the name decides (test_terminology_context.py covers the modifier).
    neoplasm = terminology.terminology_string(TUMOUR_CLASSES[0]).replace("99BATSEG^MENINGIOMA^Spinal meningioma", "^^")
    assert terminology.parse_terminology(neoplasm)["type"].value == "108369006"
    assert terminology.parse_terminology(neoplasm)["type_modifier"] is None
    assert terminology.class_for_segment("Spinal meningioma", neoplasm).key == "meningioma"
    assert terminology.class_for_segment("Hemangioblastoma", neoplasm).key == "hemangioblastoma"
    assert terminology.class_for_segment("Segment_1", neoplasm) is None
    # A specific code wins over a misleading name.
    astro = terminology.terminology_string(TUMOUR_CLASSES[2])
    assert terminology.class_for_segment("Segment_7", astro).key == "astrocytoma"


def test_overlap_is_refused_with_voxel_counts(mrml, volume):
    node = create_tumour_segmentation(mrml.scene, volume, _labels_for(volume), "scan BATseg")
    astrocytoma = node.GetSegmentation().GetSegmentIdBySegmentName("Astrocytoma")
    paint = np.zeros(_labels_for(volume).shape, np.uint8)
    paint[10:12, 12:22, 14:24] = 1  # 200 voxels on top of the ependymoma
    slicer.util.updateSegmentBinaryLabelmapFromArray(paint, node, astrocytoma, volume)
    with pytest.raises(BATsegError, match="Ependymoma/Astrocytoma: 200 voxels"):
        read_class_masks(node, volume)


def test_unknown_non_empty_segment_is_refused(mrml, volume):
    node = create_tumour_segmentation(mrml.scene, volume, _labels_for(volume), "scan BATseg")
    extra = node.GetSegmentation().AddEmptySegment("cyst", "Cyst")
    paint = np.zeros(_labels_for(volume).shape, np.uint8)
    paint[40:42, 40:42, 40:42] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(paint, node, extra, volume)
    with pytest.raises(BATsegError, match="'Cyst' are not one of the four tumour types"):
        read_class_masks(node, volume)


def test_check_no_overlap_counts_each_pair():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros_like(a)
    c = np.zeros_like(a)
    a[0] = True
    b[0, 0] = True
    c[0, 0, 0] = True
    with pytest.raises(BATsegError) as error:
        check_no_overlap({1: a, 2: b, 3: c})
    message = str(error.value)
    assert "Spinal meningioma/Ependymoma: 4 voxels" in message
    assert "Spinal meningioma/Astrocytoma: 1 voxels" in message
    assert "Ependymoma/Astrocytoma: 1 voxels" in message


def test_wrong_shape_or_values_are_refused(mrml, volume):
    with pytest.raises(BATsegError, match="do not belong together"):
        create_tumour_segmentation(mrml.scene, volume, np.zeros((3, 3, 3), np.uint8), "x")
    labels = _labels_for(volume)
    labels[0, 0, 0] = 7
    with pytest.raises(BATsegError, match="outside 0-4"):
        create_tumour_segmentation(mrml.scene, volume, labels, "x")


def _matrix(volume) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return matrix
