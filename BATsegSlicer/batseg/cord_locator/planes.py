"""Between a scan and the cord locator's input: sagittal planes at a fixed in-plane spacing.

The locator is a 2-D network on sagittal planes (rows superior -> inferior, columns anterior ->
posterior), whatever the scan's storage order: the volume is reoriented to the model convention
"PIR" (a permutation and flips only, `batseg.inference.orientation`), each left-right slice is
resampled in-plane to `PLANE_SPACING_MM`, and the result goes back the same way. Why 2-D: real
sagittal protocols have 3-4 mm slices (a 3-D kernel sees 3 to 15 of them), while a sagittal plane
at 1.5 mm shows the cord's whole course, which is what tells it from other tubes.

Intensities are z-scored over the whole volume after clipping to the 0.5-99.5 percentiles, so a
few very bright voxels (fat, a flow artefact) do not set the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from batseg.inference.orientation import MODEL_ORIENTATION, AxisMapping, axis_mapping, direction_matrix

PLANE_SPACING_MM = 1.5
# The network halves the planes four times: sizes are padded to a multiple of this, and to at
# least MIN_SIZE (instance norm needs more than one element at the bottleneck).
SIZE_MULTIPLE = 16
MIN_SIZE = 64


@dataclass(frozen=True)
class Planes:
    """A volume as locator planes, and how to bring a result back to the volume's array grid."""

    planes: np.ndarray  # (n_slices, rows, cols) float32, normalised
    mapping: AxisMapping  # input array axes -> PIR array axes
    model_shape: tuple[int, int, int]  # the PIR array shape before in-plane resampling
    spacing_pir: tuple[float, float, float]  # mm per PIR array axis (left-right, superior-inferior, anterior-posterior)


def normalise(volume: np.ndarray) -> np.ndarray:
    """Z-score after clipping to the 0.5-99.5 percentiles (module docstring)."""
    volume = volume.astype(np.float32, copy=False)
    lo, hi = np.percentile(volume, (0.5, 99.5))
    clipped = np.clip(volume, lo, hi)
    std = float(clipped.std())
    return ((clipped - float(clipped.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def zoom_factors(spacing_pir: tuple[float, float, float]) -> tuple[float, float]:
    """In-plane zoom from the scan's spacing to the locator's."""
    return spacing_pir[1] / PLANE_SPACING_MM, spacing_pir[2] / PLANE_SPACING_MM


def to_planes_array(volume_pir: np.ndarray, spacing_pir: tuple[float, float, float], order: int = 1) -> np.ndarray:
    """Each left-right slice of a PIR array resampled in-plane to the locator spacing."""
    zy, zx = zoom_factors(spacing_pir)
    return ndimage.zoom(volume_pir, (1.0, zy, zx), order=order, mode="nearest", grid_mode=True)


def from_planes_array(planes: np.ndarray, model_shape: tuple[int, int, int]) -> np.ndarray:
    """Planes (n, rows, cols) resampled back to the PIR array shape `model_shape` (linear)."""
    factors = (1.0, model_shape[1] / planes.shape[1], model_shape[2] / planes.shape[2])
    out = ndimage.zoom(planes, factors, order=1, mode="nearest", grid_mode=True)
    # zoom rounds the output size; cut or pad by edge values to the exact shape.
    out = out[:, : model_shape[1], : model_shape[2]]
    pad = [(0, 0), (0, model_shape[1] - out.shape[1]), (0, model_shape[2] - out.shape[2])]
    return np.pad(out, pad, mode="edge") if any(p[1] for p in pad) else out


def image_planes(image: sitk.Image) -> Planes:
    """The locator's input for a SimpleITK image (module docstring)."""
    mapping = axis_mapping(direction_matrix(image), MODEL_ORIENTATION)
    spacing_zyx = tuple(float(s) for s in reversed(image.GetSpacing()))
    spacing_pir = mapping.spacing_to_model(spacing_zyx)  # type: ignore[arg-type]
    volume = mapping.to_model(sitk.GetArrayViewFromImage(image).astype(np.float32))
    planes = to_planes_array(normalise(volume), spacing_pir)
    return Planes(planes, mapping, tuple(volume.shape), spacing_pir)  # type: ignore[arg-type]


def mask_planes(mask: np.ndarray, planes: Planes) -> np.ndarray:
    """A mask on the input array grid as locator planes (nearest neighbour), for training."""
    return to_planes_array(planes.mapping.to_model(mask.astype(np.uint8)), planes.spacing_pir, order=0)


def pad_to_multiple(batch: np.ndarray, multiple: int = SIZE_MULTIPLE) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad the last two axes up to a multiple (and MIN_SIZE); returns the padded array and the original size."""
    rows, cols = batch.shape[-2:]
    pad_r, pad_c = max((-rows) % multiple, MIN_SIZE - rows), max((-cols) % multiple, MIN_SIZE - cols)
    if pad_r or pad_c:
        batch = np.pad(batch, [(0, 0)] * (batch.ndim - 2) + [(0, pad_r), (0, pad_c)], mode="constant")
    return batch, (rows, cols)
