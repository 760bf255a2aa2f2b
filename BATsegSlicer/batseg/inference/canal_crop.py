"""Cascade crop: run the network only on a box around the spinal canal.

The four tumour types lie inside the dural sac (intramedullary, or intradural extramedullary
for the meningioma), so on a sagittal scan of 15 x 512 x 512 voxels most of the field of view
(vertebral bodies, the neck, the back muscles) cannot hold a lesion. The Spinal Cord Toolbox's
tumour pipeline runs its tumour network on a crop around the cord found by a first network;
BATseg does the same from a spinal cord mask on the scan's grid (`--cord-masks`, e.g. the
output of SCT's `sct_deepseg_sc` or a mask drawn in Slicer):

1. the cord mask's bounding box, mapped to the model grid, grown by a safety margin in mm on
   every side (default 25 mm: the canal is at most about 10 mm wider than the cord on each
   side, and a meningioma of 3 cm beside the cord still fits), clipped to the grid. Along the
   superior-inferior axis the box keeps the whole grid: the dural sac, and tumours of the
   filum terminale, continue below the conus where a cord mask ends, and the cord runs the
   whole field of view anyway, so the saving is across it (anterior-posterior, left-right);
2. the network runs on the model-grid volume inside the box only (the volume was z-scored as
   a whole first, so the crop's intensities are the uncropped ones); outside the box the
   logits say background (tumour logits TUMOUR_FILL_LOGIT below background's, a probability
   of about 2e-9) and the field says "far from every surface" (0 for a truncated field);
3. a lesion that touches a face of the box which is not the grid's edge may continue outside
   it: that face is moved out by the margin and the box predicted again, at most
   MAX_WIDENINGS times, after which the whole grid is predicted.

Decisions: an empty cord mask crops nothing (the whole grid is predicted, and the caller
warns). A model whose field is not truncated (the Table 5 ablation) has no "far" value, so it is
never cropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

DEFAULT_MARGIN_MM = 25.0
TUMOUR_FILL_LOGIT = -20.0
MAX_WIDENINGS = 3

GridRunner = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Box:
    """A box on the model grid: [lo, hi) per axis (z, y, x)."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.lo, self.hi))  # type: ignore[return-value]

    def covers(self, shape: Sequence[int]) -> bool:
        return all(a == 0 for a in self.lo) and tuple(self.hi) == tuple(int(n) for n in shape)


def margin_voxels(margin_mm: float, spacing: Sequence[float]) -> tuple[int, int, int]:
    """The margin in voxels of the model grid, per axis (rounded up)."""
    return tuple(int(math.ceil(margin_mm / float(s))) for s in spacing)  # type: ignore[return-value]


def roi_box(
    roi: np.ndarray,
    roi_spacing: Sequence[float],
    grid_spacing: Sequence[float],
    grid_shape: Sequence[int],
    margin_mm: float = DEFAULT_MARGIN_MM,
    whole_axes: Sequence[int] = (),
) -> Box | None:
    """The model-grid box around a mask given on the reoriented input grid (same axes, its own
    spacing), grown by `margin_mm`, spanning the grid along `whole_axes`; None for an empty mask."""
    if not roi.any():
        return None
    margin = margin_voxels(margin_mm, grid_spacing)
    lo, hi = [], []
    for axis in range(3):
        if axis in whole_axes:
            lo.append(0)
            hi.append(int(grid_shape[axis]))
            continue
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(roi.any(axis=other))
        scale = float(roi_spacing[axis]) / float(grid_spacing[axis])  # input voxels -> model voxels
        first = int(math.floor(present[0] * scale)) - margin[axis]
        last = int(math.ceil((present[-1] + 1) * scale)) + margin[axis]
        lo.append(max(0, first))
        hi.append(min(int(grid_shape[axis]), max(last, first + 1)))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


def open_faces(foreground: np.ndarray, box: Box, grid_shape: Sequence[int]) -> list[tuple[int, int]]:
    """(axis, 0 for the low face / 1 for the high face) of each box face inside the grid that a
    foreground voxel of the crop touches."""
    faces = []
    for axis in range(3):
        for side, at_edge in ((0, box.lo[axis] == 0), (1, box.hi[axis] == int(grid_shape[axis]))):
            if at_edge:
                continue
            index = [slice(None)] * 3
            index[axis] = 0 if side == 0 else -1
            if foreground[tuple(index)].any():
                faces.append((axis, side))
    return faces


def widen(box: Box, faces: Sequence[tuple[int, int]], margin: Sequence[int], grid_shape: Sequence[int]) -> Box:
    """The box with each of `faces` moved out by the margin, clipped to the grid."""
    lo, hi = list(box.lo), list(box.hi)
    for axis, side in faces:
        if side == 0:
            lo[axis] = max(0, lo[axis] - int(margin[axis]))
        else:
            hi[axis] = min(int(grid_shape[axis]), hi[axis] + int(margin[axis]))
    return Box(tuple(lo), tuple(hi))  # type: ignore[arg-type]


@dataclass
class CropResult:
    """Outputs on the whole grid and what the crop did."""

    logits: np.ndarray
    field: np.ndarray | None
    box: Box
    widenings: int
    whole_grid: bool


def fill_outside(crop_logits: np.ndarray, crop_field: np.ndarray | None, box: Box, grid_shape: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Whole-grid logits and field from the box's: background and "far" outside (module docstring)."""
    logits = np.zeros((crop_logits.shape[0], *grid_shape), dtype=np.float32)
    logits[1:] = TUMOUR_FILL_LOGIT
    logits[(slice(None), *box.slices)] = crop_logits
    field = None
    if crop_field is not None:
        field = np.zeros((crop_field.shape[0], *grid_shape), dtype=np.float32)
        field[(slice(None), *box.slices)] = crop_field
    return logits, field


def predict_cropped(volume: np.ndarray, run_grid: GridRunner, box: Box, margin_mm: float,
                    grid_spacing: Sequence[float]) -> CropResult:
    """Predict `volume` (the whole model grid) inside `box`, widening it where a lesion reaches a
    face (module docstring, step 3); `run_grid` predicts a sub-volume and returns (logits, field)."""
    shape = volume.shape
    margin = margin_voxels(margin_mm, grid_spacing)
    for widenings in range(MAX_WIDENINGS + 1):
        logits, field = run_grid(np.ascontiguousarray(volume[box.slices]))
        if box.covers(shape):
            return CropResult(logits, field, box, widenings, True)
        faces = open_faces(np.argmax(logits, axis=0) != 0, box, shape)
        if not faces:
            full_logits, full_field = fill_outside(logits, field, box, shape)
            return CropResult(full_logits, full_field, box, widenings, False)
        box = widen(box, faces, margin, shape)
        del logits, field
    whole = Box((0, 0, 0), tuple(int(n) for n in shape))  # type: ignore[arg-type]
    logits, field = run_grid(volume)
    return CropResult(logits, field, whole, MAX_WIDENINGS + 1, True)
