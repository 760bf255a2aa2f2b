"""A DICOM SEG written by the engine (`batseg predict --dicom-seg`), loaded into a headless MRML scene.

slicer-core (the pip package these tests run on) has no DICOM database and no DICOM SEG reader
(Slicer's DICOMSegmentationPlugin lives in the QuantitativeReporting extension, on dcmqi), so
the SEG is loaded the way that plugin does it: each segment's frames are placed by their own
ImagePositionPatient / ImageOrientationPatient / PixelSpacing (LPS -> RAS) into a volume node,
imported into a segmentation node with the segment's label, CIELab colour and coded terminology.
The checks: Slicer maps every segment onto the voxels of the NIfTI label map that Slicer's own
reader loads (same RAS geometry), Slicer's terminology logic with the module's context finds
each segment's codes (the module's name and colour), and the module's segment -> tumour-class
mapping reads each segment as its type.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

import highdicom as hd  # noqa: E402  (a dependency: requirements.txt, pyproject.toml)

from batseg import dicom_seg  # noqa: E402
from batseg.io import find_cases, read_image  # noqa: E402
from batseg.labels import TUMOUR_CLASSES  # noqa: E402
from BATsegSlicerLib import terminology  # noqa: E402
from BATsegSlicerLib.segmentation import import_label_array  # noqa: E402

TESTING = Path(__file__).resolve().parents[1]


@pytest.fixture
def dicom_helpers():
    sys.path.insert(0, str(TESTING))
    try:
        import dicom_helpers

        yield dicom_helpers
    finally:
        sys.path.remove(str(TESTING))


@pytest.fixture
def terminologies(tmp_path):
    """Slicer's terminologies logic with the module's context loaded (as at Slicer start-up)."""
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetModuleShareDirectory(str(tmp_path))
    assert terminology.load_terminology_context(logic) == terminology.TYPE_CONTEXT
    return logic


def _series(folder: Path, helpers) -> Path:
    """An oblique sagittal DICOM series (7 slices of 3.6 mm, 0.55 x 0.5 mm pixels)."""
    angle = np.radians(8.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    direction = tilt @ np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    rng = np.random.default_rng(0)
    array = rng.integers(0, 1000, (7, 44, 40))
    helpers.write_dicom_series(helpers.int16_image(array, (0.55, 0.5, 3.6), direction), folder,
                               extra_tags={"0020|0052": "1.2.826.0.1.3680043.2.1125.1.78"})
    return folder


def _seg_volume(seg) -> tuple[np.ndarray, vtk.vtkMatrix4x4]:
    """The SEG as a label array (K, J, I) on its own frame geometry, and its IJK -> RAS matrix."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    row_cosine, column_cosine = np.split(np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float), 2)
    row_spacing, column_spacing = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    gap = float(shared.PixelMeasuresSequence[0].SpacingBetweenSlices)
    normal = np.cross(row_cosine, column_cosine)
    frames = seg.PerFrameFunctionalGroupsSequence
    positions = np.asarray([[float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient] for item in frames])
    along = positions @ normal
    first = positions[int(np.argmin(along))]
    slices = np.rint((along - along.min()) / gap).astype(int)
    pixels = seg.pixel_array.reshape(len(frames), seg.Rows, seg.Columns)
    labels = np.zeros((slices.max() + 1 + 2, seg.Rows, seg.Columns), np.uint8)  # room for empty end slices
    for frame, (item, k) in enumerate(zip(frames, slices)):
        labels[k][pixels[frame] > 0] = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = (row_cosine * column_spacing, column_cosine * row_spacing,
                                                    normal * gap, first)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, ras[r, c])
    return labels, matrix


def _terminology_entry(item) -> str:
    """Slicer's serialized terminology of a SEG segment (what the DICOM SEG plugin sets)."""
    category, kind = item.SegmentedPropertyCategoryCodeSequence[0], item.SegmentedPropertyTypeCodeSequence[0]
    modifiers = kind.get("SegmentedPropertyTypeModifierCodeSequence") or []
    region = item.AnatomicRegionSequence[0]

    def coded(code) -> str:
        return f"{code.CodingSchemeDesignator}^{code.CodeValue}^{code.CodeMeaning}"

    return "~".join([terminology.TYPE_CONTEXT, coded(category), coded(kind), coded(modifiers[0]) if modifiers else "^^",
                     terminology.ANATOMIC_CONTEXT, coded(region), "^^"])


def test_a_dicom_seg_loads_onto_the_nifti_labels_with_the_module_terminology(mrml, tmp_path, dicom_helpers, terminologies):
    case = find_cases(_series(tmp_path / "series", dicom_helpers))[0]
    image = read_image(case)
    labels = np.zeros(image.GetSize()[::-1], np.uint8)
    for tumour in TUMOUR_CLASSES:  # a box per type, on different slices and rows
        labels[tumour.value - 1: tumour.value + 1, 8 * tumour.value: 8 * tumour.value + 5, 10:16] = tumour.value
    nifti = sitk.GetImageFromArray(labels)
    nifti.CopyInformation(image)  # `batseg predict`'s label map is on the input's exact grid
    sitk.WriteImage(nifti, str(tmp_path / "series.nii.gz"))
    files, gap = dicom_seg.series_slices(case)
    segmentation = dicom_seg.build_segmentation(labels, files, case.name, {"name": "m", "version": "1"}, {}, gap)
    dicom_seg.seg_writer(segmentation)(tmp_path / "series.seg.dcm")
    seg = hd.seg.segread(tmp_path / "series.seg.dcm")

    label_node = mrml.volumes.AddArchetypeVolume(str(tmp_path / "series.nii.gz"), "labels", 1)  # Slicer's reader
    assert label_node is not None and label_node.IsA("vtkMRMLLabelMapVolumeNode")
    seg_labels, matrix = _seg_volume(seg)
    reference = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "seg geometry")
    reference.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(reference, np.zeros_like(seg_labels))
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "series SEG")
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    ids = []
    for number in seg.segment_numbers:
        item = seg.get_segment_description(number)
        rgb = hd.color.CIELabColor.from_dicom_value(tuple(item.RecommendedDisplayCIELabValue)).to_rgb()
        segment_id = node.GetSegmentation().AddEmptySegment(f"seg{number}", item.SegmentLabel, [c / 255 for c in rgb])
        node.GetSegmentation().GetSegment(segment_id).SetTerminology(_terminology_entry(item))
        ids.append(segment_id)
    import_label_array(node, reference, seg_labels, ids)

    label_array = slicer.util.arrayFromVolume(label_node)
    np.testing.assert_array_equal(label_array, labels)  # Slicer reads the NIfTI as written
    for tumour, segment_id in zip(TUMOUR_CLASSES, ids):
        segment = node.GetSegmentation().GetSegment(segment_id)
        # Geometry: the SEG's segment, resampled by Slicer onto the NIfTI label node, is its label.
        on_labels = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, label_node)
        np.testing.assert_array_equal(on_labels > 0, label_array == tumour.value, err_msg=tumour.name)
        # Name, colour and codes: the module's.
        assert segment.GetName() == tumour.name
        assert np.allclose(np.asarray(segment.GetColor()) * 255, [255 * c for c in tumour.color], atol=1.0)
        assert terminology.class_for_segment("renamed by the user", segment.GetTerminology()) == tumour
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terminologies.DeserializeTerminologyEntry(segment.GetTerminology(), entry)
        entry.SetTerminologyContextName("not loaded")  # found only if the codes are in the module's context
        terminologies.UpdateEntryFromLoadedTerminologies(entry, [], [])
        assert entry.GetTerminologyContextName() == terminology.TYPE_CONTEXT
        found = entry.GetTypeModifierObject() if tumour.key in terminology.MODIFIER_BY_CLASS_KEY else entry.GetTypeObject()
        assert found.GetSlicerLabel() == tumour.name
        assert found.GetRecommendedDisplayRGBValue() == dicom_seg.display_rgb(tumour)
