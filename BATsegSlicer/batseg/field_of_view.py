"""Warnings for inputs whose geometry is outside what the models were trained on.

The models are trained on sagittal 2-D acquisitions (slices across left-right, 3-4 mm thick,
0.4-0.8 mm in-plane) that show the cord over several vertebral levels. The predictor resamples
any volume to the model's grid, so an axial slab or an isotropic 3-D volume is segmented
without error, but on data the model has not seen: a radiologist who loads such a series
should be told, as for a scan whose metadata says it is not T1 (`acquisition.py`). Like that
check, these warnings never stop the run; they are printed, written into the lesion report and
shown in the Slicer panel.

Decisions:
- The slice axis is the array axis with the largest spacing when it is at least 1.5 times the
  smallest; a volume without such an axis is "near-isotropic" (a 3-D acquisition or a
  reformat), which gets its own warning since the network never saw its sharper through-plane
  detail.
- A slice axis within about 45 degrees of left-right (|x| >= 0.7 of the unit direction) is
  sagittal; otherwise the series is axial or coronal.
- The superior-inferior coverage is the volume's extent along the patient's head-foot axis. Under
  50 mm (about two vertebral levels) the cord is not seen in context: the network's patch spans
  60 mm and its training fields of view 70-380 mm.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

ANISOTROPY = 1.5
SAGITTAL_COSINE = 0.7
MIN_SI_COVERAGE_MM = 50.0
PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}  # dominant LPS component of the slice normal


def _geometry(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return direction, np.asarray(image.GetSpacing(), dtype=float), np.asarray(image.GetSize(), dtype=float)


def si_coverage_mm(image: sitk.Image) -> float:
    """The volume's extent along the patient's superior-inferior (LPS z) axis, in mm."""
    direction, spacing, size = _geometry(image)
    return float(np.sum(np.abs(direction[2]) * spacing * size))


def slice_plane(image: sitk.Image) -> str | None:
    """'sagittal', 'coronal' or 'axial' for a 2-D stack; None for a near-isotropic volume."""
    direction, spacing, _ = _geometry(image)
    if spacing.max() < ANISOTROPY * spacing.min():
        return None
    normal = np.abs(direction[:, int(np.argmax(spacing))])
    return "sagittal" if normal[0] >= SAGITTAL_COSINE else PLANES[int(np.argmax(normal))]


def geometry_warnings(image: sitk.Image) -> list[str]:
    """One line per way the volume's geometry departs from the training data (module docstring)."""
    warnings = []
    spacing = " x ".join(f"{s:.2g}" for s in image.GetSpacing())
    plane = slice_plane(image)
    if plane is None:
        warnings.append(
            f"the volume is near-isotropic ({spacing} mm): a 3-D acquisition or reformat, while the model was "
            "trained on 2-D sagittal slices 3-4 mm thick; check the result, or load the sagittal series")
    elif plane != "sagittal":
        warnings.append(
            f"the slices are {plane} ({spacing} mm), while the model was trained on sagittal slices; "
            "load the sagittal series of the study for a reliable result")
    coverage = si_coverage_mm(image)
    if coverage < MIN_SI_COVERAGE_MM:
        warnings.append(
            f"the volume covers only {coverage:.0f} mm from head to foot (the model expects at least "
            f"{MIN_SI_COVERAGE_MM:.0f} mm, the cord over several vertebral levels); the result is unreliable")
    return warnings
