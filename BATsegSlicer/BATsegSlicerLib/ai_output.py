"""What the AI produced, kept with its segmentation for export and provenance.

When the Logic creates a segmentation from a BATseg run it stores, on the segmentation node:
attributes with the model's name, version, title and weights checksum, and a reference to a
label map volume "<segmentation> (AI output)" holding the AI's original label map (input
grid). Both are saved with the scene, so a case can be corrected today and exported next week
with the AI's original output (aiTr/) and the editing effort measured against it.

The label map is an ordinary, visible node, not one hidden from editors: Slicer's Save dialog
(qSlicerSaveDataDialog::populateNode) lists, and so writes, only storable nodes that are not
hidden from editors, and a hidden archive was silently left out of an ordinary save (only an
.mrb bundle kept it). It is listed under the input's study beside the segmentation, and tagged
with the `BATseg.AIOutputOf` attribute (the segmentation's ID); the module's input selector
never offers it (label maps are excluded there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer

ATTRIBUTE_PREFIX = "BATseg."
MODEL_FIELDS = ("name", "version", "title", "weights_sha256")
AI_OUTPUT_REFERENCE = "BATsegAIOutput"
AI_OUTPUT_OF = ATTRIBUTE_PREFIX + "AIOutputOf"


@dataclass
class AIOutput:
    """The AI label map (K, J, I) on the input grid and the model that produced it."""

    labels: np.ndarray | None
    model: dict[str, str] | None


def remember_ai_output(
    segmentation_node: "slicer.vtkMRMLSegmentationNode", reference: "slicer.vtkMRMLScalarVolumeNode",
    labels: np.ndarray, manifest: dict[str, Any],
) -> "slicer.vtkMRMLLabelMapVolumeNode":
    """Store the model fields and a copy of `labels` (a label map node the Save dialog writes)
    with the segmentation node; returns the label map node."""
    for field in MODEL_FIELDS:
        segmentation_node.SetAttribute(ATTRIBUTE_PREFIX + "Model." + field, str(manifest.get(field, "")))
    scene = segmentation_node.GetScene()
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", segmentation_node.GetName() + " (AI output)")
    node.SetAttribute(AI_OUTPUT_OF, segmentation_node.GetID())
    matrix = _ijk_to_ras(reference)
    node.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(node, labels.astype(np.uint8))
    segmentation_node.SetNodeReferenceID(AI_OUTPUT_REFERENCE, node.GetID())
    return node


def recall_ai_output(segmentation_node: "slicer.vtkMRMLSegmentationNode") -> AIOutput:
    """The stored AI output; fields are None for a segmentation the AI did not make."""
    model = {field: segmentation_node.GetAttribute(ATTRIBUTE_PREFIX + "Model." + field) for field in MODEL_FIELDS}
    has_model = any(value for value in model.values())
    node = segmentation_node.GetNodeReference(AI_OUTPUT_REFERENCE)
    labels = None
    if node is not None and node.GetImageData() is not None:
        labels = np.array(slicer.util.arrayFromVolume(node), copy=True)
    return AIOutput(labels=labels, model={k: v or "" for k, v in model.items()} if has_model else None)


def _ijk_to_ras(volume: "slicer.vtkMRMLVolumeNode"):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return matrix
