"""The optional probability overlay: where the model is sure, and where it hesitates.

The engine writes CASE.probabilities.nii.gz, a 4-component float32 image with the probability
of each tumour class (values 1-4) on the input grid. Slicer cannot show a 4-component image
as an overlay, so the module shows one scalar volume: the probability that a voxel is tumour
of any type (the sum of the four class probabilities, clipped to [0, 1]). Values near 0.5
mark the uncertain border a reviewer should check. The per-class values stay in the file for
those who need them; they are not loaded, to keep memory use at one volume.
"""

from __future__ import annotations

import numpy as np
import slicer

from batseg.errors import BATsegError
from batseg.labels import TUMOUR_CLASSES

COLOR_NODE_ID = "vtkMRMLColorTableNodeFileColdToHotRainbow.txt"


def tumour_probability(class_probabilities: np.ndarray) -> np.ndarray:
    """(K, J, I, 4) class probabilities -> (K, J, I) float32 probability of any tumour."""
    if class_probabilities.ndim != 4 or class_probabilities.shape[-1] != len(TUMOUR_CLASSES):
        raise BATsegError(f"the probability image has shape {class_probabilities.shape}, expected "
                          f"{len(TUMOUR_CLASSES)} components per voxel: the engine and module versions differ")
    return np.clip(class_probabilities.sum(axis=-1), 0.0, 1.0).astype(np.float32)


def create_probability_volume(
    scene: "slicer.vtkMRMLScene", reference: "slicer.vtkMRMLScalarVolumeNode", probability: np.ndarray, name: str
) -> "slicer.vtkMRMLScalarVolumeNode":
    """A scalar volume on `reference`'s grid holding `probability` (0-1), with a colour map."""
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(node, probability)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        if scene.GetNodeByID(COLOR_NODE_ID) is not None:  # default colour tables exist in the application
            display.SetAndObserveColorNodeID(COLOR_NODE_ID)
    return node
