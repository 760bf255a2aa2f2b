"""Real healthy scans resliced to random clinical sagittal grids, and T2 scans made T1-like.

Real spinal MRI that can be redistributed is 1 mm isotropic and mostly T2-weighted (see
../shared/data/real-spine-mri); the target data is sagittal T1 after gadolinium, 0.4-0.8 mm
in-plane with 3-4 mm slices across left-right. This module brings a real scan (and its cord
mask) onto such a grid, drawn at random per case so that a network trained on the result sees
the spread of real protocols:

- Grid: PIR (i toward posterior, j toward inferior, k toward right: the phantoms' and the
  shipped model's axes), in-plane spacing U(0.4, 0.8) mm, slice thickness U(3.0, 4.2) mm, a
  rotation of up to 6 degrees about each axis, and a superior-inferior window of 60-100% of
  the scan's extent (the small and large fields of view of real protocols).
- Slice thickness: before sampling, the source is blurred across left-right with a Gaussian
  whose full width at half maximum is the slice thickness (a thick slice averages its
  thickness; plain interpolation would keep 1 mm detail that a 3.6 mm slice cannot show).
- T2 -> T1-like ("tissue-wise remapping"): on T2 the cerebrospinal fluid around the cord is
  bright, on T1 it is dark; fat is bright on both. Inside the spinal canal, approximated as
  the cord mask dilated by 6 mm, voxels brighter than the cord are mixed toward a dark CSF
  signal (0.3-0.45 of the cord's) in proportion to how far they are from cord toward CSF
  brightness (fully from halfway); outside the canal the scan is kept, so callers crop to the
  rows the cord mask covers (`cord_rows`). The result has T1's dark canal around an
  intermediate cord; bone marrow stays T2-like (intermediate), a known difference.
- T1 tissue levels (optional, `t1_tissue_levels`): outside the canal a T2 scan's tissues are
  darker than the cord (median about 0.4 of the cord's signal on the T2 scans of ../shared)
  while on T1 muscle, marrow and fat sit near or above it (median about 0.7, the 99th
  percentile 1.2-1.9 on the real T1 scans). nnU-Net z-scores each scan as a whole, so with
  T2's levels the cord, and a lesion painted relative to it, stand 3-5 standard deviations
  above the scan's mean, and on a real T1 about 1.5-2.5: a network trained on the first misses
  lesions of the second. The remap moves the 50th, 90th and 99th percentiles of the tissue
  outside the canal (voxels above AIR_LEVEL of the cord's signal; air is kept) to random T1
  levels by a monotone piecewise-linear curve, blended out toward the canal.
- Anterior-posterior field of view (optional, `anterior_posterior_window`): the T2 scans of
  ../shared show the whole neck and face with much air, which also shifts the z-score; a
  window of 40-150 mm that holds the cord gives tight and clinical fields of view as well.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

# LPS direction columns of the grid: i -> posterior, j -> inferior, k -> right.
PIR_DIRECTION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
IN_PLANE_MM = (0.4, 0.8)
SLICE_MM = (3.0, 4.2)
MAX_TILT_DEG = 6.0
SI_WINDOW = (0.6, 1.0)
CANAL_MARGIN_MM = 6.0
AIR_LEVEL = 0.2  # of the cord's signal: darker voxels are air or noise, left as they are
# Random targets of the outside-canal tissue percentiles (50, 90, 99), in units of the cord's
# signal: around the real T1 scans' 0.66-0.72 / 0.99-1.04 / 1.23-1.85, widened.
T1_TISSUE_TARGETS = ((0.55, 0.85), (0.9, 1.3), (1.2, 2.0))
# Anterior-posterior field of view around the cord: a tight research crop (the real T1 of
# ../shared is 42 mm) to a clinical 150 mm; the T2 scans of ../shared span 200-380 mm.
AP_WINDOW_MM = (40.0, 150.0)


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """3x3 rotation: successive rotations about the LPS x, y and z axes."""
    matrix = np.eye(3)
    for axis, degrees in enumerate(angles_deg):
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        r = np.eye(3)
        a, b = [i for i in range(3) if i != axis]
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        matrix = r @ matrix
    return matrix


def _corners(image: sitk.Image) -> np.ndarray:
    size = image.GetSize()
    return np.array([
        image.TransformContinuousIndexToPhysicalPoint([c[d] * (size[d] - 1) for d in range(3)])
        for c in np.ndindex(2, 2, 2)
    ])


def clinical_grid(image: sitk.Image, rng: np.random.Generator | None, in_plane: float | None = None,
                  slice_mm: float | None = None) -> sitk.Image:
    """An empty PIR image on a clinical sagittal grid inside `image`'s extent (random when
    `rng` is given; else the whole extent, untilted, at `in_plane` x `slice_mm`)."""
    if rng is not None:
        in_plane = in_plane or float(rng.uniform(*IN_PLANE_MM))
        slice_mm = slice_mm or float(rng.uniform(*SLICE_MM))
        direction = _rotation(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG, 3)) @ PIR_DIRECTION
    else:
        direction = PIR_DIRECTION
    spacing = np.array([in_plane or 0.5, in_plane or 0.5, slice_mm or 3.6])
    # The scan's extent on the untilted grid, then the largest box of the tilted grid inside it
    # (each axis shortened by what the tilt brings in from the others), so that no grid voxel
    # falls outside the scan, as none does in an acquired series.
    local = _corners(image) @ PIR_DIRECTION
    centre, extent = (local.min(axis=0) + local.max(axis=0)) / 2, np.ptp(local, axis=0)
    mixing = np.abs(direction.T @ PIR_DIRECTION)
    inner = extent - (mixing - np.diag(np.diag(mixing))) @ extent
    extent = np.maximum(inner, 0.5 * extent)
    centre = direction.T @ (PIR_DIRECTION @ centre)
    lo, hi = centre - extent / 2, centre + extent / 2
    if rng is not None:  # a superior-inferior window (grid axis j) of 60-100% of the extent
        length = (hi[1] - lo[1]) * rng.uniform(*SI_WINDOW)
        lo[1] = lo[1] + rng.uniform(0, hi[1] - lo[1] - length)
        hi[1] = lo[1] + length
    size = [max(1, int(np.floor((h - l) / s)) + 1) for l, h, s in zip(lo, hi, spacing)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing.tolist())
    reference.SetDirection(direction.flatten().tolist())
    reference.SetOrigin((direction @ lo).tolist())
    return reference


def _blur_left_right(image: sitk.Image, slice_mm: float) -> sitk.Image:
    """Blur along the source axis closest to left-right by a Gaussian of FWHM `slice_mm`."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(direction[0])))  # source index axis most aligned with LPS x
    sigma_vox = slice_mm / 2.355 / image.GetSpacing()[axis]
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array = ndimage.gaussian_filter1d(array, sigma_vox, axis=2 - axis, mode="nearest")
    blurred = sitk.GetImageFromArray(array)
    blurred.CopyInformation(image)
    return blurred


def reslice(image: sitk.Image, reference: sitk.Image, label: bool = False) -> sitk.Image:
    """`image` on `reference`'s grid: thick-slice average + linear for images, nearest for masks."""
    if label:
        return sitk.Resample(sitk.Cast(image > 0.5, sitk.sitkUInt8), reference, sitk.Transform(),
                             sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    source = _blur_left_right(sitk.Cast(image, sitk.sitkFloat32), reference.GetSpacing()[2])
    return sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def t1_like(array: np.ndarray, cord: np.ndarray, spacing_zyx: tuple[float, float, float],
            rng: np.random.Generator) -> np.ndarray:
    """A T2-weighted array with T1's dark CSF around the cord (module docstring)."""
    cord = cord > 0
    if not cord.any():
        return array.astype(np.float32)
    canal = ndimage.distance_transform_edt(~cord, sampling=spacing_zyx) <= CANAL_MARGIN_MM
    cord_signal = float(np.median(array[cord]))
    around = canal & ~cord
    csf_signal = float(np.percentile(array[around], 90)) if around.any() else cord_signal * 2
    if csf_signal <= cord_signal * 1.05:
        return array.astype(np.float32)
    # Fully dark from halfway between cord and CSF brightness: partial-volume CSF must go too.
    towards_csf = np.clip((array - cord_signal) / (0.5 * (csf_signal - cord_signal)), 0.0, 1.0)
    # Soften the canal's edge so that no step is drawn at the 5 mm margin.
    weight = ndimage.gaussian_filter(canal.astype(np.float32), sigma=[1.0 / s for s in spacing_zyx]) * towards_csf
    dark = cord_signal * rng.uniform(0.3, 0.45)
    return (array * (1 - weight) + dark * weight).astype(np.float32)


def _canal_weight(cord: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """1 inside the canal (cord dilated by CANAL_MARGIN_MM), falling smoothly to 0 outside."""
    canal = ndimage.distance_transform_edt(~cord, sampling=spacing_zyx) <= CANAL_MARGIN_MM
    return ndimage.gaussian_filter(canal.astype(np.float32), sigma=[1.0 / s for s in spacing_zyx])


def t1_tissue_levels(array: np.ndarray, cord: np.ndarray, spacing_zyx: tuple[float, float, float],
                     rng: np.random.Generator) -> np.ndarray:
    """`array` with the tissue outside the canal moved to random T1 levels (module docstring)."""
    cord = cord > 0
    if not cord.any():
        return array.astype(np.float32)
    cord_signal = float(np.median(array[cord]))
    canal = _canal_weight(cord, spacing_zyx)
    outside = canal < 0.01
    ratio = array / max(cord_signal, 1e-6)
    tissue = ratio[outside & (ratio > AIR_LEVEL)]
    if tissue.size < 100:
        return array.astype(np.float32)
    q50, q90, q99 = np.percentile(tissue, [50, 90, 99])
    t50, t90, t99 = (float(rng.uniform(*bounds)) for bounds in T1_TISSUE_TARGETS)
    t90 = max(t90, t50 + 0.05)
    t99 = max(t99, t90 + 0.05)
    top = float(ratio.max())
    # Knots must rise: skip a T2 percentile that does not (a flat histogram), keep air's level.
    knots_x, knots_y = [0.0, AIR_LEVEL], [0.0, AIR_LEVEL]
    for x, y in ((q50, t50), (q90, t90), (q99, t99)):
        if x > knots_x[-1] + 1e-3:
            knots_x.append(float(x))
            knots_y.append(y)
    if top > knots_x[-1] + 1e-3:
        knots_x.append(top)
        knots_y.append(knots_y[-1] + (top - knots_x[-2]))  # above the 99th: slope 1, fat keeps its spread
    remapped = np.where(ratio < AIR_LEVEL, ratio, np.interp(ratio, knots_x, knots_y)) * cord_signal
    return (array * canal + remapped * (1.0 - canal)).astype(np.float32)


def cord_rows(cord: np.ndarray, row_mm: float, margin_mm: float = 5.0) -> slice:
    """The j rows (axis 1) the cord mask covers, widened by `margin_mm`: the part of a scan whose
    canal `t1_like` can remap."""
    rows = np.flatnonzero(cord.any(axis=(0, 2)))
    if rows.size == 0:
        return slice(0, cord.shape[1])
    pad = int(round(margin_mm / row_mm))
    return slice(max(0, rows[0] - pad), min(cord.shape[1], rows[-1] + pad + 1))


def crop_rows(reference: sitk.Image, rows: slice, axis: int = 1) -> sitk.Image:
    """`reference` limited to the index range `rows` along grid `axis` (0 i, 1 j, 2 k; same
    spacing and direction, shifted origin)."""
    size = [int(s) for s in reference.GetSize()]
    size[axis] = int(rows.stop - rows.start)
    cropped = sitk.Image(size, reference.GetPixelID())
    cropped.SetSpacing(reference.GetSpacing())
    cropped.SetDirection(reference.GetDirection())
    start = [0, 0, 0]
    start[axis] = int(rows.start)
    cropped.SetOrigin(reference.TransformIndexToPhysicalPoint(start))
    return cropped


def anterior_posterior_window(cord: np.ndarray, column_mm: float, rng: np.random.Generator,
                              width_mm: tuple[float, float] = AP_WINDOW_MM) -> slice:
    """A random window of i columns (axis 2 of the k, j, i array) of U(`width_mm`) that holds the
    whole cord mask: the tight and the wide anterior-posterior fields of view of real scans."""
    columns = np.flatnonzero(cord.any(axis=(0, 1)))
    total = cord.shape[2]
    if columns.size == 0:
        return slice(0, total)
    width = int(round(rng.uniform(*width_mm) / column_mm))
    width = min(total, max(width, int(columns[-1] - columns[0] + 1)))
    lo_min, lo_max = max(0, int(columns[-1]) + 1 - width), min(int(columns[0]), total - width)
    start = int(rng.integers(lo_min, lo_max + 1)) if lo_max >= lo_min else max(0, min(int(columns[0]), total - width))
    return slice(start, start + width)
