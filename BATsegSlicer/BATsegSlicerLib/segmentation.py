"""Label map <-> segmentation node for the four tumour classes.

Decisions:
- The segmentation always holds the four tumour segments, empty ones included, in label
  order, with fixed names and colours (`batseg.labels`) and standard terminology
  (`terminology.py`). A reviewer can then paint a class the model missed with one click, and
  every case has the same segment list.
- Geometry: the segmentation's reference geometry is the input volume's, and the label array
  is imported through a label map node that carries the input's exact IJK-to-RAS matrix, so
  segment voxels coincide with input voxels (no resampling).
- Reading back (for export), segments are mapped to classes by terminology and name, never by
  label value. Overlapping tumour segments are refused with the voxel counts of each
  overlapping pair rather than resolved silently: which type a voxel carries is the reviewer's
  decision, and a guess would end up as a training label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import slicer
import vtk

from batseg.errors import BATsegError
from batseg.labels import TUMOUR_CLASSES, TumourClass

from BATsegSlicerLib.terminology import class_for_segment, terminology_string


def set_segment_terminology(segment: "slicer.vtkSegment", text: str) -> None:
    """Set a segment's terminology (vtkSegment.SetTerminology appeared in Slicer 5.4; tag before)."""
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(text)
    else:
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), text)


def segment_terminology(segment: "slicer.vtkSegment") -> str:
    """A segment's serialized terminology entry ('' if it has none)."""
    if hasattr(segment, "GetTerminology"):
        return segment.GetTerminology() or ""
    tag = vtk.reference("")
    found = segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    return str(tag) if found else ""


def add_tumour_segments(segmentation_node: "slicer.vtkMRMLSegmentationNode") -> list[str]:
    """Add the four empty tumour segments (named, coloured, coded) and return their IDs."""
    segmentation = segmentation_node.GetSegmentation()
    ids = []
    for tumour in TUMOUR_CLASSES:
        segment_id = segmentation.AddEmptySegment(tumour.key, tumour.name, list(tumour.color))
        set_segment_terminology(segmentation.GetSegment(segment_id), terminology_string(tumour))
        ids.append(segment_id)
    return ids


def create_tumour_segmentation(
    scene: "slicer.vtkMRMLScene", reference: "slicer.vtkMRMLScalarVolumeNode", labels: np.ndarray, name: str
) -> "slicer.vtkMRMLSegmentationNode":
    """A new segmentation node holding `labels` (K, J, I; values 0-4) as the four tumour segments."""
    expected = tuple(reversed(reference.GetImageData().GetDimensions()))
    if labels.shape != expected:
        raise BATsegError(f"label map has shape {labels.shape}, the volume {expected}: they do not belong together")
    if labels.size and (labels.min() < 0 or labels.max() > len(TUMOUR_CLASSES)):
        raise BATsegError(f"label map holds values outside 0-{len(TUMOUR_CLASSES)}: it is not a BATseg output")
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    segment_ids = add_tumour_segments(node)
    import_label_array(node, reference, labels.astype(np.uint8), segment_ids)
    return node


def import_label_array(
    node: "slicer.vtkMRMLSegmentationNode", reference: "slicer.vtkMRMLScalarVolumeNode",
    labels: np.ndarray, segment_ids: list[str],
) -> None:
    """Fill the given segments from a label array: value v goes to segment_ids[v - 1]."""
    scene = node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__batseg_import__")
    try:
        labelmap.SetIJKToRASMatrix(_matrix(reference))
        slicer.util.updateVolumeFromArray(labelmap, labels)
        ids = vtk.vtkStringArray()
        for segment_id in segment_ids:
            ids.InsertNextValue(segment_id)
        logic = slicer.modules.segmentations.logic()
        if not logic.ImportLabelmapToSegmentationNode(labelmap, node, ids):
            raise BATsegError("Slicer could not import the label map into the segmentation")
    finally:
        _remove_with_display(scene, labelmap)


def _matrix(volume: "slicer.vtkMRMLVolumeNode") -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return matrix


def _remove_with_display(scene: "slicer.vtkMRMLScene", node: "slicer.vtkMRMLNode") -> None:
    """Remove a temporary node and the display/storage nodes it created."""
    for index in range(node.GetNumberOfDisplayNodes()):
        display = node.GetNthDisplayNode(index)
        if display is not None:
            scene.RemoveNode(display)
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    if storage is not None:
        scene.RemoveNode(storage)
    scene.RemoveNode(node)


@dataclass
class ClassMasks:
    """Per-class binary masks read back from a segmentation, on a reference volume's grid."""

    masks: dict[int, np.ndarray]  # class value -> bool array (K, J, I)
    segment_names: dict[int, list[str]] = field(default_factory=dict)  # class value -> segment names

    def label_array(self) -> np.ndarray:
        """The masks as one label array (requires no overlap between classes)."""
        shape = next(iter(self.masks.values())).shape
        labels = np.zeros(shape, np.uint8)
        for value, mask in self.masks.items():
            labels[mask] = value
        return labels


def read_class_masks(
    node: "slicer.vtkMRMLSegmentationNode", reference: "slicer.vtkMRMLScalarVolumeNode"
) -> ClassMasks:
    """The voxels of every tumour class, mapped by terminology and name, on `reference`'s grid.

    Several segments of one class (e.g. "Ependymoma" and "Ependymoma 2") are merged. A
    non-empty segment that is none of the four classes, or voxels claimed by two classes, raise
    a one-line BATsegError saying what to fix in the Segment Editor.
    """
    shape = tuple(reversed(reference.GetImageData().GetDimensions()))
    masks = {tumour.value: np.zeros(shape, bool) for tumour in TUMOUR_CLASSES}
    names: dict[int, list[str]] = {tumour.value: [] for tumour in TUMOUR_CLASSES}
    unknown = []
    segmentation = node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, reference) > 0
        tumour = class_for_segment(segment.GetName(), segment_terminology(segment))
        if tumour is None:
            if voxels.any():
                unknown.append(segment.GetName())
            continue
        masks[tumour.value] |= voxels  # two segments of one class merge: not a conflict
        names[tumour.value].append(segment.GetName())
    if unknown:
        raise BATsegError(
            f"segment(s) {', '.join(repr(n) for n in unknown)} are not one of the four tumour types: "
            "rename them (e.g. 'Ependymoma') or delete them before exporting")
    check_no_overlap(masks)
    return ClassMasks(masks, names)


def check_no_overlap(masks: dict[int, np.ndarray]) -> None:
    """Raise a one-line BATsegError listing the voxel count of every overlapping class pair."""
    values = sorted(masks)
    conflicts = []
    for position, first in enumerate(values):
        for second in values[position + 1:]:
            count = int(np.count_nonzero(masks[first] & masks[second]))
            if count:
                conflicts.append(f"{_name(first)}/{_name(second)}: {count} voxels")
    if conflicts:
        raise BATsegError(
            "tumour segments overlap (" + "; ".join(conflicts) + "): each voxel must carry one type; "
            "remove the overlap in the Segment Editor (e.g. Logical operators > Subtract) and export again")


def _name(value: int) -> str:
    return next(t.name for t in TUMOUR_CLASSES if t.value == value)


def show_in_3d(node: "slicer.vtkMRMLSegmentationNode") -> None:
    """Create the closed-surface representation so the segments appear in the 3D view."""
    node.CreateClosedSurfaceRepresentation()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetVisibility3D(True)


def place_beside(node: "slicer.vtkMRMLNode", reference: "slicer.vtkMRMLNode") -> None:
    """Put `node` under the same subject-hierarchy parent (the input's study) as `reference`,
    and under the same parent transform, so it is listed and displayed with its volume.

    In the application every data node gets a hierarchy item when it is added; headless, items
    exist only where they were created, so a missing item for `node` is created here.
    """
    scene = reference.GetScene()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    reference_item = hierarchy.GetItemByDataNode(reference) if hierarchy is not None else 0
    if reference_item:  # 0: the volume is not in the hierarchy, nothing to align with
        parent = hierarchy.GetItemParent(reference_item)
        item = hierarchy.GetItemByDataNode(node) or hierarchy.CreateItem(parent, node)
        hierarchy.SetItemParent(item, parent)
    transform = reference.GetParentTransformNode()
    if transform is not None and hasattr(node, "SetAndObserveTransformNodeID"):
        node.SetAndObserveTransformNodeID(transform.GetID())


def class_of(value: int) -> TumourClass:
    """The tumour class with this label value."""
    return next(t for t in TUMOUR_CLASSES if t.value == value)
