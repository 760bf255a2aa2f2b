"""Is this a T2-weighted scan? The fluid around the cord against the cord itself.

BATseg expects a T1-weighted scan (with contrast). On T1 the cerebrospinal fluid around the cord
is darker than the cord; on T2 it is brighter, two to three times. The acquisition metadata
(`batseg.acquisition`) says which contrast a DICOM series or BIDS sidecar is, but a NIfTI file
carries none, and the tumour model, shown a T2 scan, reports false lesions. So the image itself is
asked: the median signal in a shell `SHELL_MM` around the cord mask (on the cord's own rows),
against the median signal inside the cord. A ratio above `T2_RATIO` reads as T2.

Why the median of a thin shell: in a narrow canal the shell also takes epidural fat (bright on
T1) and bone; the median stays with the fluid, which fills most of the shell on every level of a
healthy canal. The threshold sits between the ratios measured on T1 and T2 scans with the
locator's own masks (`scripts/train_cord_locator.py --report`, docs/cord_locator.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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


def shell_ratio(volume: np.ndarray, cord: np.ndarray, spacing_zyx: Sequence[float]) -> float | None:
    """Median signal of the shell around `cord` (its own rows) over the cord's median; None if too small."""
    cord = cord.astype(bool)
    if cord.sum() < MIN_CORD_VOXELS:
        return None
    distance = ndimage.distance_transform_edt(~cord, sampling=[float(s) for s in spacing_zyx])
    shell = (distance > SHELL_MM[0]) & (distance <= SHELL_MM[1])
    cord_signal = float(np.median(volume[cord]))
    if not shell.any() or cord_signal <= 0:
        return None
    return float(np.median(volume[shell])) / cord_signal


def check_contrast(volume: np.ndarray, cord: np.ndarray, spacing_zyx: Sequence[float]) -> ContrastCheck:
    """The contrast check of a scan (array on its grid) with a cord mask on the same grid."""
    ratio = shell_ratio(volume, cord, spacing_zyx)
    return ContrastCheck(ratio, ratio is not None and ratio > T2_RATIO)
