"""File input/output of MRML nodes through Slicer's storage nodes (no scene changes).

Storage nodes are used stand-alone (never added to the scene) so that writing the input for
the child process, or reading its outputs, leaves the scene exactly as it was: cancelling a
run must not leave a trace. `slicer.util.loadVolume` / `saveNode` are not used because they
need the Slicer application (they fail headless) and add nodes to the scene.

Geometry: Slicer's NIfTI reader may store the voxels in another index order than the file
(it reorients on reading), but writing a node and reading the file back gives the node's own
IJK-to-RAS matrix and array: the engine works on the file written here, so its outputs are on
the grid of the node, and `read_array_on_grid` checks that before using them.
"""

from __future__ import annotations

import os

import numpy as np
import slicer
import vtk

from batseg.errors import BATsegError

# Largest allowed difference between the IJK-to-RAS matrices of an output file and the input
# volume: files store geometry as float32, so a round trip is exact only to about 1e-5 mm.
GEOMETRY_TOLERANCE_MM = 1e-3


def _write(storage: "slicer.vtkMRMLStorageNode", node: "slicer.vtkMRMLNode", path: str) -> None:
    """Write `node` through a stand-alone storage node (compressed), one-line error on failure."""
    storage.SetFileName(os.fspath(path))
    storage.SetUseCompression(1)
    if not storage.WriteData(node):
        raise BATsegError(f"could not write {path}: check that the folder is writable and has free space")


def write_volume(node: "slicer.vtkMRMLVolumeNode", path: str) -> None:
    """Write a volume (scalar, label map or vector) to `path` (.nii.gz, .nrrd) without the scene."""
    _write(slicer.vtkMRMLVolumeArchetypeStorageNode(), node, path)


def write_segmentation(node: "slicer.vtkMRMLSegmentationNode", path: str) -> None:
    """Write a segmentation node as a .seg.nrrd file without the scene."""
    _write(slicer.vtkMRMLSegmentationStorageNode(), node, path)


def ijk_to_ras(node: "slicer.vtkMRMLVolumeNode") -> np.ndarray:
    """The node's 4x4 IJK-to-RAS matrix as a numpy array."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def read_array_on_grid(path: str, reference: "slicer.vtkMRMLVolumeNode", vector: bool = False) -> np.ndarray:
    """The voxel array of the image file `path`, checked to lie on the grid of `reference`.

    Returns (K, J, I) for scalar images, (K, J, I, C) with `vector=True`. Raises a one-line
    BATsegError if the file is missing or its size or geometry differ from the reference.
    """
    if not os.path.isfile(path):
        raise BATsegError(f"the segmentation process did not write {os.path.basename(path)}: see the log for why")
    node = slicer.vtkMRMLVectorVolumeNode() if vector else slicer.vtkMRMLScalarVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(os.fspath(path))
    if not storage.ReadData(node) or node.GetImageData() is None:
        raise BATsegError(f"could not read {os.path.basename(path)}: the file is damaged or not an image")
    expected = reference.GetImageData().GetDimensions()
    found = node.GetImageData().GetDimensions()
    if tuple(found) != tuple(expected):
        raise BATsegError(f"{os.path.basename(path)} has size {found}, the input volume {expected}: "
                          "the output does not belong to this volume")
    difference = np.abs(ijk_to_ras(node) - ijk_to_ras(reference)).max()
    if difference > GEOMETRY_TOLERANCE_MM:
        raise BATsegError(f"{os.path.basename(path)} is not on the input volume's grid "
                          f"(geometry differs by {difference:.3g} mm): the output does not belong to this volume")
    return np.array(slicer.util.arrayFromVolume(node), copy=True)
