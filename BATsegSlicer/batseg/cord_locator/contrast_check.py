"""Is this a T2-weighted scan? The fluid around the cord against the cord itself.

BATseg expects a T1-weighted scan (with contrast). On T1 the cerebrospinal fluid around the cord
is darker than the cord; on T2 it is brighter, two to three times. The acquisition metadata
(`batseg.acquisition`) says which contrast a DICOM series or BIDS sidecar is, but a NIfTI file
carries none, and the tumour model, shown a T2 scan, reports false lesions. So the image itself is
asked: the median signal in a shell `SHELL_MM` around the cord mask, against the median signal
inside the cord. A ratio above `T2_RATIO` reads as T2.

Why the median of a thin shell: in a narrow canal the shell also takes epidural fat (bright on
T1) and bone; the median stays with the fluid, which fills most of the shell on every level of a
healthy canal. The threshold sits between the ratios measured on T1 and T2 scans with the
locator's own masks (`scripts/train_cord_locator.py --report`, docs/cord_locator.md).

Why the shell leaves out the zeros that reach the array's border: a scan resliced to a tilted grid
(or a short slab) has wedges of exact zero outside its field of view, and a cord near the top or
bottom of the field has its shell partly there; counted as signal, they pulled the median of a real
T2 slab's shell to 0.59 times the cord (2.25 without them). Zeros enclosed by tissue (a fluid
voxel a scanner clipped to zero) are not outside the field and stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

SHELL_MM = (1.0, 3.5)  # from, to: distance from the cord mask's surface
T2_RATIO = 1.35
MIN_CORD_VOXELS = 20


@dataclass(frozen=True)
class ContrastCheck:
    """The shell-to-cord signal ratio and what it says."""

    ratio: float | None  # None: too little cord to measure
    looks_t2: bool

    def warning(self) -> str | None:
        if not self.looks_t2:
            return None
        return (f"the fluid around the spinal cord is {self.ratio:.1f} times as bright as the cord, as on a T2-weighted "
                "scan; BATseg is trained on T1-weighted scans with contrast, and on T2 its lesions are unreliable: "
                "load the post-contrast T1 series")


def outside_field(volume: np.ndarray) -> np.ndarray:
    """Voxels of exact zero connected to the array's border: outside the field of view (module docstring)."""
    zero = volume == 0
    if not zero.any():
        return zero
    labelled, _ = ndimage.label(zero)
    faces = [labelled[index] for axis in range(volume.ndim) for index in _faces(volume.ndim, axis)]
    touching = np.unique(np.concatenate([face.ravel() for face in faces]))
    return np.isin(labelled, touching[touching > 0])


def _faces(ndim: int, axis: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Index tuples of the first and last slice of an array along `axis`."""
    first = tuple(0 if a == axis else slice(None) for a in range(ndim))
    last = tuple(-1 if a == axis else slice(None) for a in range(ndim))
    return first, last


def shell_ratio(volume: np.ndarray, cord: np.ndarray, spacing_zyx: Sequence[float]) -> float | None:
    """Median signal of the shell around `cord`, inside the field of view, over the cord's median;
    None if too small."""
    cord = cord.astype(bool)
    if cord.sum() < MIN_CORD_VOXELS:
        return None
    distance = ndimage.distance_transform_edt(~cord, sampling=[float(s) for s in spacing_zyx])
    shell = (distance > SHELL_MM[0]) & (distance <= SHELL_MM[1]) & ~outside_field(volume)
    cord_signal = float(np.median(volume[cord]))
    if not shell.any() or cord_signal <= 0:
        return None
    return float(np.median(volume[shell])) / cord_signal


def check_contrast(volume: np.ndarray, cord: np.ndarray, spacing_zyx: Sequence[float]) -> ContrastCheck:
    """The contrast check of a scan (array on its grid) with a cord mask on the same grid."""
    ratio = shell_ratio(volume, cord, spacing_zyx)
    return ContrastCheck(ratio, ratio is not None and ratio > T2_RATIO)
