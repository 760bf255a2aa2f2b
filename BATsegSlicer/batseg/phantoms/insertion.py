"""Synthetic lesions of the four tumour types inserted into a real healthy scan on its own grid.

The phantom renderer (`render.py`) draws a whole synthetic spine; a network trained on it alone
learns that renderer's look. Here the anatomy, noise and texture are a real scan's and only the
lesion is synthetic: it is painted relative to the scan's manual cord mask, following METHOD.md
section 6. Inputs are arrays on a sagittal PIR grid (axes k left-right, j superior-inferior, i
anterior-posterior; `real_grid.py` makes them), outputs the image, the label (values 1-4) and
the cord mask.

Decisions, beyond METHOD.md's table:
- Geometry follows the cord: each lesion's centre line is the cord's centroid per j row, so a
  fusiform lesion bends with the cord. Sizes are drawn so that the label volumes cover about
  0.05-6 cm3 (meningioma 0.4-5, ependymoma 0.5-6, astrocytoma 0.3-4, hemangioblastoma nodule
  0.03-0.9 cm3); the grid's extent may shorten a lesion.
- Signal is relative to the cord's median: meningioma 1.6-2.4x, homogeneous; ependymoma
  1.4-2.0x with 15% heterogeneity; astrocytoma 1.15-1.5x patchy, with an ill-defined margin
  (blend ramp 1.2-2.5 mm, label where the blend weight exceeds 0.5); hemangioblastoma
  2.0-3.0x homogeneous. Cysts (ependymoma poles 55% each, hemangioblastoma 80%) take a dark
  CSF-like 0.3-0.45x and are not labelled, as in clinical masks.
- Partial volume: occupancy is averaged over 5 positions across each thick slice; the label
  is occupancy > 0.5. Noise of the scan's own level (from its high-pass residual) is added
  where the lesion replaces the background, so that the lesion is not smoother than the scan.
- Not modelled: cord displacement by a meningioma (the cord keeps its place, the lesion takes
  the space beside it, overlapping the canal's edge), cord expansion by intramedullary
  lesions beyond what the lesion itself covers, flow voids, dural tails, calcifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

MENINGIOMA, EPENDYMOMA, ASTROCYTOMA, HEMANGIOBLASTOMA = 1, 2, 3, 4
SUBSAMPLES = (-0.4, -0.2, 0.0, 0.2, 0.4)  # positions across a slice, in slice thicknesses
SHARP_MM = 0.6


@dataclass
class Centreline:
    """The cord's centroid (k, i in mm) and radius (mm) per j row; NaN where there is no cord."""

    k_mm: np.ndarray
    i_mm: np.ndarray
    radius: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.radius))


@dataclass
class Part:
    """One ellipsoidal or fusiform body of a lesion, in mm around the cord's centre line."""

    j0: float  # centre row (voxel index along superior-inferior)
    half_length: float  # mm along superior-inferior
    r_i: float  # mm along anterior-posterior
    r_k: float  # mm along left-right
    off_i: float = 0.0  # mm from the cord centre
    off_k: float = 0.0
    power: float = 0.5  # 0.5: ellipsoid; larger: more fusiform
    ramp: float = SHARP_MM  # mm of the blend from outside to inside
    signal: float = 1.0  # relative to the cord's median
    texture: float = 0.0  # relative amplitude of the smooth texture
    labelled: bool = True


@dataclass
class Inserted:
    image: np.ndarray
    label: np.ndarray
    cord: np.ndarray
    lesions: list[dict] = field(default_factory=list)


def centreline(cord: np.ndarray, spacing: tuple[float, float, float]) -> Centreline:
    """Per j row: the cord's centroid and equivalent radius (from its area in the sagittal stack)."""
    rows = cord.shape[1]
    k_mm, i_mm, radius = (np.full(rows, np.nan) for _ in range(3))
    for j in range(rows):
        kk, ii = np.nonzero(cord[:, j, :])
        if len(kk) < 2:
            continue
        k_mm[j], i_mm[j] = kk.mean() * spacing[0], ii.mean() * spacing[2]
        radius[j] = np.sqrt(len(kk) * spacing[0] * spacing[2] / np.pi)
    # Smooth along the cord: single rows are noisy at 3-4 mm slices.
    good = np.isfinite(radius)
    if good.sum() >= 3:
        for values in (k_mm, i_mm, radius):
            values[good] = ndimage.uniform_filter1d(values[good], 5, mode="nearest")
    return Centreline(k_mm, i_mm, radius)


def _occupancy(part: Part, line: Centreline, shape: tuple[int, int, int],
               spacing: tuple[float, float, float]) -> np.ndarray:
    """Blend weight of `part` per voxel (0 outside, 1 inside), averaged across each slice."""
    sk, sj, si = spacing
    j = np.arange(shape[1])
    s = (j - part.j0) * sj
    along = np.clip(1 - (s / part.half_length) ** 2, 0, None) ** part.power
    rows = np.flatnonzero(along > 0)
    rows = rows[np.isfinite(line.radius[rows])]
    weight = np.zeros(shape, np.float32)
    if rows.size == 0:
        return weight
    r_min = max(min(part.r_i, part.r_k), 0.5)
    ii = np.arange(shape[2]) * si
    for offset in SUBSAMPLES:
        kk = (np.arange(shape[0]) + offset) * sk
        for jj in rows:
            ri, rk = part.r_i * along[jj], part.r_k * along[jj]
            if ri < 0.05 or rk < 0.05:
                continue
            di = (ii[None, :] - line.i_mm[jj] - part.off_i) / ri
            dk = (kk[:, None] - line.k_mm[jj] - part.off_k) / rk
            distance = (np.sqrt(di**2 + dk**2) - 1) * min(r_min, ri, rk)
            weight[:, jj, :] += np.clip(0.5 - distance / part.ramp, 0, 1)
    return weight / len(SUBSAMPLES)


def _texture(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), [2.0 / s for s in spacing])
    return field_ / max(float(field_.std()), 1e-6)


def noise_level(image: np.ndarray, cord: np.ndarray) -> float:
    """The scan's noise standard deviation near the cord (high-pass residual, robust)."""
    residual = image - ndimage.uniform_filter(image, (1, 3, 3))
    near = ndimage.binary_dilation(cord, iterations=3) if cord.any() else np.ones_like(cord, bool)
    mad = float(np.median(np.abs(residual[near] - np.median(residual[near]))))
    return 1.4826 * mad * 1.2  # the 3x3 mean removes about a ninth of the noise power


def _centre_row(rng: np.random.Generator, line: Centreline, half_length_mm: float, row_mm: float) -> float | None:
    """A row with cord for the lesion's whole length, preferring rows not too close to the ends."""
    rows = line.rows
    if rows.size == 0:
        return None
    margin = int(np.ceil(half_length_mm / row_mm * 0.8))
    inner = rows[(rows >= rows.min() + margin) & (rows <= rows.max() - margin)]
    pool = inner if inner.size else rows[rows.size // 4 : max(rows.size // 4 + 1, 3 * rows.size // 4)]
    return float(rng.choice(pool))


def draw_parts(rng: np.random.Generator, tumour_type: int, line: Centreline, row_mm: float) -> list[Part]:
    """The bodies of one lesion of `tumour_type` (module docstring); [] if the scan shows no cord."""
    if line.rows.size == 0:
        return []
    cord_r = float(np.nanmedian(line.radius))
    if tumour_type == MENINGIOMA:
        half, r_i, r_k = rng.uniform(5, 11), rng.uniform(3.5, 6.5), rng.uniform(3.5, 6.5)
        angle = rng.choice([0.0, np.pi, np.pi / 2, -np.pi / 2]) + rng.uniform(-0.5, 0.5)
        reach = cord_r + 0.35 * min(r_i, r_k)  # in the CSF beside the cord; the cord itself is spared
        parts = [Part(0, half, r_i, r_k, reach * np.cos(angle), reach * np.sin(angle),
                      signal=rng.uniform(1.6, 2.4), texture=0.04)]
    elif tumour_type == EPENDYMOMA:
        half, radius = rng.uniform(9, 24), rng.uniform(max(2.5, cord_r * 0.8), max(3.0, cord_r * 1.5))
        parts = [Part(0, half, radius, radius * rng.uniform(0.8, 1.1), power=0.7,
                      signal=rng.uniform(1.4, 2.0), texture=0.15)]
        for side in (-1, 1):
            if rng.random() < 0.55:
                cyst = rng.uniform(3, 8)
                parts.append(Part(side * (half + 0.4 * cyst) / row_mm, cyst, radius * 0.6, radius * 0.6,
                                  signal=rng.uniform(0.3, 0.45), labelled=False))
    elif tumour_type == ASTROCYTOMA:
        half, radius = rng.uniform(7, 20), rng.uniform(max(2.2, cord_r * 0.6), max(2.8, cord_r * 1.2))
        angle = rng.uniform(0, 2 * np.pi)
        parts = [Part(0, half, radius, radius * rng.uniform(0.7, 1.0), 0.45 * cord_r * np.cos(angle),
                      0.45 * cord_r * np.sin(angle), power=0.7, ramp=rng.uniform(1.2, 2.5),
                      signal=rng.uniform(1.15, 1.5), texture=0.35)]
    else:
        radius = rng.uniform(2.2, 6.0)
        parts = [Part(0, radius * rng.uniform(1.0, 1.3), radius, radius, 0.8 * cord_r, rng.uniform(-0.3, 0.3) * cord_r,
                      signal=rng.uniform(2.0, 3.0), texture=0.03)]
        if rng.random() < 0.8:
            cyst = rng.uniform(6, 18)
            side = rng.choice([-1, 1])
            parts.append(Part(side * (parts[0].half_length + 0.8 * cyst) / row_mm, cyst, cord_r * 0.7, cord_r * 0.7,
                              signal=rng.uniform(0.3, 0.45), labelled=False))
    centre = _centre_row(rng, line, max(p.half_length for p in parts), row_mm)
    for part in parts:
        part.j0 += centre
    return parts


def insert_lesion(image: np.ndarray, cord: np.ndarray, spacing: tuple[float, float, float],
                  tumour_type: int, rng: np.random.Generator) -> Inserted:
    """`image` (k, j, i; spacing in that order, mm) with one lesion of `tumour_type` painted in."""
    cord = cord > 0
    line = centreline(cord, spacing)
    parts = draw_parts(rng, tumour_type, line, spacing[1])
    label = np.zeros(image.shape, np.uint8)
    if not parts:
        return Inserted(image.astype(np.float32), label, cord.astype(np.uint8))
    cord_signal = float(np.median(image[cord]))
    sigma = noise_level(image, cord)
    texture = _texture(rng, image.shape, spacing)
    out = image.astype(np.float32).copy()
    tumour = np.zeros(image.shape, np.float32)
    for part in parts:
        weight = _occupancy(part, line, image.shape, spacing)
        if tumour_type == MENINGIOMA:  # beside the cord, never inside it
            weight *= 1 - ndimage.gaussian_filter(cord.astype(np.float32), 0.7)
        signal = cord_signal * part.signal * (1 + part.texture * np.clip(texture, -2.5, 2.5))
        noisy = signal + rng.standard_normal(image.shape).astype(np.float32) * sigma
        out = out * (1 - weight) + noisy * weight
        tumour = np.maximum(tumour, weight) if part.labelled else np.where(weight > 0.5, 0, tumour)
    if tumour_type == MENINGIOMA:
        tumour[cord] = 0  # extramedullary: the label never takes a cord voxel
    label[tumour > 0.5] = tumour_type
    if tumour_type != MENINGIOMA:  # the cord mask holds its intramedullary lesion, as in the phantoms
        cord = cord | (label > 0)
    voxel = float(np.prod(spacing))
    meta = {"type": int(tumour_type), "volume_mm3": round(float((label > 0).sum()) * voxel, 1),
            "centre_row": round(float(parts[0].j0), 1), "signal_vs_cord": round(parts[0].signal, 2),
            "cysts": sum(not p.labelled for p in parts)}
    return Inserted(np.clip(out, 0, None), label, cord.astype(np.uint8), [meta] if meta["volume_mm3"] > 0 else [])
