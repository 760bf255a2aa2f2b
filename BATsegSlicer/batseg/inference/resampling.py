"""Resampling between an image's own voxel grid and the model's grid (both in model axis order).

The model grid covers exactly the same field of view as the (reoriented) input: its shape is
``round(shape * spacing / target_spacing)`` per axis and its voxels tile the same box, so its
effective spacing is ``spacing * shape / new_shape`` (within half a voxel of the target). This
is nnU-Net's convention (`compute_new_shape` + resize to a shape), which the training data went
through, and it makes the way back a pure change of shape: the model's outputs are resized to
the input's shape over the same box, then transposed back (see `orientation`), so the output
label grid *is* the input grid, with no geometry arithmetic.

Schemes (decision; "separate_z" is the default because nnU-Net's default preprocessing, which
the training plans keep, resamples the training images that way):
- "separate_z" (nnU-Net's scheme for anisotropic data): when the current or the target spacing
  is anisotropic (max / min > 3, nnU-Net's ANISO_THRESHOLD) and one axis is the coarse one, the
  two fine axes are resized slice by slice with a cubic spline (order 3; order 1 for
  probabilities and fields), and the coarse axis with nearest-neighbour (order 0); otherwise all
  three axes are resized together with the same order;
- "linear": trilinear over all three axes (order 1), for ablation.
The resize itself is scipy's `ndimage.zoom` in grid mode with edge replication (the operation
scikit-image's `resize` performs for nnU-Net, here without its dependencies or torch so that
an ONNX Runtime run never imports torch); spline results are clipped to the input's range as
`resize` does. The test suite compares both against nnU-Net's own `resample_data_or_seg_to_shape`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

ANISOTROPY_THRESHOLD = 3.0  # nnU-Net's ANISO_THRESHOLD
SCHEMES: tuple[str, ...] = ("separate_z", "linear")


def model_grid_shape(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> tuple[int, int, int]:
    """The model-grid shape covering the same field of view (at least one voxel per axis)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing))  # type: ignore


def _single_coarse_axis(spacing: Sequence[float], threshold: float) -> int | None:
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.max() / spacing.min() <= threshold:
        return None
    coarse = np.flatnonzero(spacing == spacing.max())
    return int(coarse[0]) if coarse.size == 1 else None


def separate_z_axis(
    current_spacing: Sequence[float], new_spacing: Sequence[float], threshold: float = ANISOTROPY_THRESHOLD
) -> int | None:
    """The axis resampled with nearest neighbour in the separate-z scheme, or None (nnU-Net's rule).

    The current spacing decides first, then the target spacing; two equally coarse axes mean no
    separate axis.
    """
    current = np.asarray(current_spacing, dtype=np.float64)
    if current.max() / current.min() > threshold:
        return _single_coarse_axis(current, threshold)
    return _single_coarse_axis(new_spacing, threshold)


def _zoom(array: np.ndarray, new_shape: Sequence[int], order: int) -> np.ndarray:
    """Resize an array to `new_shape` over the same box (grid mode, edges replicated)."""
    if tuple(array.shape) == tuple(new_shape):
        return array
    factors = [n / o for n, o in zip(new_shape, array.shape)]
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1)
    if out.shape != tuple(new_shape):
        raise RuntimeError(f"zoom produced {out.shape}, expected {tuple(new_shape)}")
    return out


def _nearest_indices(old: int, new: int) -> np.ndarray:
    """Source indices of a nearest-neighbour resize from `old` to `new` samples over one box."""
    centres = (np.arange(new) + 0.5) * (old / new) - 0.5
    return np.clip(np.floor(centres + 0.5), 0, old - 1).astype(np.intp)


def resize_volume(
    volume: np.ndarray,
    new_shape: Sequence[int],
    current_spacing: Sequence[float],
    new_spacing: Sequence[float],
    order: int,
    scheme: str = "separate_z",
) -> np.ndarray:
    """Resize a (z, y, x) float array to `new_shape` with the given scheme (module docstring)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown resampling scheme {scheme!r}; choose one of {SCHEMES}")
    volume = np.asarray(volume, dtype=np.float32)
    new_shape = tuple(int(n) for n in new_shape)
    if volume.shape == new_shape:
        return volume
    axis = separate_z_axis(current_spacing, new_spacing) if scheme == "separate_z" else None
    if scheme == "linear":
        order = 1
    if axis is None:
        out = _zoom(volume, new_shape, order)
        if order > 1:
            out = np.clip(out, volume.min(), volume.max())
    else:
        plane_shape = [n for a, n in enumerate(new_shape) if a != axis]
        moved = np.moveaxis(volume, axis, 0)
        if order <= 1:
            # Order 0/1 is separable without a prefilter: one 3-D call with factor 1 along the
            # coarse axis equals the slice-by-slice resize, with less Python overhead.
            planes = _zoom(moved, [moved.shape[0], *plane_shape], order)
        else:
            # Each slice is clipped to its own range, as scikit-image's resize does per call.
            planes = np.stack([np.clip(_zoom(p, plane_shape, order), p.min(), p.max()) for p in moved])
        if planes.shape[0] != new_shape[axis]:
            planes = planes[_nearest_indices(planes.shape[0], new_shape[axis])]
        out = np.moveaxis(planes, 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def _linear_along(array: np.ndarray, new: int, axis: int) -> np.ndarray:
    """Linear resize of one axis to `new` samples over the same box, edges replicated.

    Output sample i reads input coordinate (i + 0.5) * old / new - 0.5 (grid mode), clipped to
    the first and last sample: exactly `ndimage.zoom(order=1, grid_mode=True, mode="nearest")`
    along that axis, computed as two gathers and a blend (memory-bound, several times faster
    than the general zoom for many slices).
    """
    old = array.shape[axis]
    coordinates = np.clip((np.arange(new) + 0.5) * (old / new) - 0.5, 0, old - 1)
    low = np.floor(coordinates).astype(np.intp)
    high = np.minimum(low + 1, old - 1)
    shape = [1] * array.ndim
    shape[axis] = new
    fraction = (coordinates - low).astype(np.float32).reshape(shape)
    out = np.take(array, low, axis=axis)
    upper = np.take(array, high, axis=axis)
    upper -= out
    upper *= fraction
    out += upper
    return out


def resize_channels(
    channels: np.ndarray,
    new_shape: Sequence[int],
    current_spacing: Sequence[float],
    new_spacing: Sequence[float],
    order: int = 1,
    scheme: str = "separate_z",
) -> np.ndarray:
    """Resize each channel of a (C, z, y, x) array (logits, fields) to `new_shape`.

    With order 1 and a separate coarse axis (the usual case) the coarse axis is resized by
    nearest neighbour first (it only selects slices, so the order does not change the result),
    then both in-plane axes of every channel at once (`_linear_along`): the same numbers as
    `resize_volume` channel by channel, several times faster.
    """
    new_shape = tuple(int(n) for n in new_shape)
    axis = separate_z_axis(current_spacing, new_spacing) if scheme == "separate_z" else None
    if order != 1 or axis is None or tuple(channels.shape[1:]) == new_shape:
        out = np.empty((channels.shape[0], *new_shape), dtype=np.float32)
        for c in range(channels.shape[0]):
            out[c] = resize_volume(channels[c], new_shape, current_spacing, new_spacing, order, scheme)
        return out
    out = np.asarray(channels, dtype=np.float32)
    if out.shape[axis + 1] != new_shape[axis]:
        out = np.take(out, _nearest_indices(out.shape[axis + 1], new_shape[axis]), axis=axis + 1)
    for a in range(3):
        if a != axis and out.shape[a + 1] != new_shape[a]:
            out = _linear_along(out, new_shape[a], a + 1)
    return np.ascontiguousarray(out)
