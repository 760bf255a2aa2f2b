"""Postprocessing of the final label map in native space (Lemay et al.'s steps, in mm3).

Runs after the prediction has been resampled back onto the input image's grid, so volumes are
the patient's real volumes. Steps, in this order:
1. fill holes per class (optional);
2. drop lesions (connected components of the tumour union, 26-connectivity, see
   `batseg.lesions`) smaller than a minimum volume in mm3;
3. drop lesions whose mean tumour probability is below a minimum (optional; needs the class
   probabilities);
4. drop lesions that enhance less than a minimum, their median signal over the cord's
   (optional; needs the scan and a cord reference, `batseg.enhancement`);
5. optionally give every lesion a single tumour type (the project's own option, METHOD.md 5).

Decisions the papers leave open:
- Hole filling is 3-D (`scipy.ndimage.binary_fill_holes` per class, 6-connected background,
  the array border counting as outside). Only background voxels inside a hole are filled: a
  voxel of another tumour class inside the hole is kept, because overwriting one class with
  another is the type decision of step 3, not a hole. A hole that opens into a neighbouring
  slice is not enclosed in 3-D and is left alone.
- Small lesions are removed before typing, and removal is by lesion (the tumour union), not
  by class: a lesion split between two types is judged by its whole size.
- A lesion exactly at the minimum volume is kept (removal is strictly "smaller than").
- Lesion confidence: the mean over the lesion's voxels of the probability of tumour of any type
  (one minus the background probability), after hole filling, so a filled hole counts with its
  own (low) probability. Why the mean and not the peak: on the validation cases of model 0.10.0
  the peak was 0.9 or more on every false lesion of at least 200 mm3, as on the true ones, while
  the mean set most of them apart (`scripts/lesion_confidence.py`, docs/method.md). Nothing is
  removed at 0 (the default, and the value of a model whose tuning did not choose one).
- Enhancement: without a cord reference (no cord mask, or a cord the lesions cover) no lesion is
  judged by it and all are kept: the step removes only what it can measure. Nothing is removed at
  0 (the default). Its blind spot, said wherever it is offered: a non-enhancing astrocytoma.
- One type per lesion: the class with the largest summed probability over the lesion's
  voxels; without probabilities, the class with most voxels; ties go to the lower label value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from batseg.enhancement import enhancement_per_lesion
from batseg.errors import BATsegError
from batseg.lesions import (
    TUMOUR_VALUES,
    check_label_map,
    class_counts_per_lesion,
    label_lesions,
    mean_tumour_probability_per_lesion,
    probability_sums_per_lesion,
    tumour_probabilities,
    voxel_volume_mm3,
)
from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3

def postprocess(
    labels: np.ndarray,
    spacing: Sequence[float],
    probabilities: np.ndarray | None = None,
    fill_holes: bool = True,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    one_type_per_lesion: bool = False,
    min_tumour_probability: float = 0.0,
    min_enhancement: float = 0.0,
    volume: np.ndarray | None = None,
    cord_signal: float | None = None,
) -> np.ndarray:
    """Clean a (z, y, x) label map (values 0-4); `spacing` in mm in the array's axis order.

    `probabilities` is (5, z, y, x) with background first, or (4, z, y, x) with the tumour
    classes only; it is used by `min_tumour_probability` (which needs it) and by
    `one_type_per_lesion`. `volume` (the scan on the same grid) and `cord_signal` (the cord's
    median signal, `batseg.enhancement.cord_reference`) are used by `min_enhancement`.
    Returns a new array of the input dtype; the input is not modified.
    """
    check_label_map(labels)
    result = np.array(labels, copy=True)
    voxel_mm3 = voxel_volume_mm3(spacing)
    if fill_holes:
        result = fill_holes_per_class(result)
    if min_volume_mm3 > 0:
        result = remove_small_lesions(result, voxel_mm3, min_volume_mm3)
    if min_tumour_probability > 0:
        result = remove_unconfident_lesions(result, probabilities, min_tumour_probability)
    if min_enhancement > 0 and cord_signal is not None:
        result = remove_unenhanced_lesions(result, volume, cord_signal, min_enhancement)
    if one_type_per_lesion:
        result = single_type_per_lesion(result, probabilities)
    return result


def fill_holes_per_class(labels: np.ndarray) -> np.ndarray:
    """Set the background voxels enclosed (in 3-D) by a class to that class, class by class."""
    result = labels.copy()
    for value in TUMOUR_VALUES:
        class_mask = result == value
        if not class_mask.any():
            continue
        holes = ndimage.binary_fill_holes(class_mask) & ~class_mask
        result[holes & (result == 0)] = value
    return result


def remove_small_lesions(labels: np.ndarray, voxel_mm3: float, min_volume_mm3: float) -> np.ndarray:
    """Set to background every lesion whose volume is below `min_volume_mm3`."""
    components, count = label_lesions(labels > 0)
    if count == 0:
        return labels
    volumes_mm3 = np.bincount(components.ravel(), minlength=count + 1) * voxel_mm3
    too_small = volumes_mm3 < min_volume_mm3 * (1.0 - 1e-9)  # rounding tolerance: "exactly at" is kept
    too_small[0] = False  # component 0 is the background
    result = labels.copy()
    result[too_small[components]] = 0
    return result


def remove_unconfident_lesions(labels: np.ndarray, probabilities: np.ndarray | None,
                               min_tumour_probability: float) -> np.ndarray:
    """Set to background every lesion whose mean tumour probability is below the minimum."""
    if probabilities is None:
        raise BATsegError("a minimum tumour probability needs the class probabilities: pass them, or set the "
                          "minimum to 0")
    components, count = label_lesions(labels > 0)
    if count == 0:
        return labels
    means = mean_tumour_probability_per_lesion(tumour_probabilities(probabilities, labels.shape), components, count)
    unsure = means < min_tumour_probability
    unsure[0] = False  # component 0 is the background
    result = labels.copy()
    result[unsure[components]] = 0
    return result


def remove_unenhanced_lesions(labels: np.ndarray, volume: np.ndarray | None, cord_signal: float,
                              min_enhancement: float) -> np.ndarray:
    """Set to background every lesion whose median signal is below `min_enhancement` times the cord's."""
    if volume is None:
        raise BATsegError("a minimum enhancement needs the scan itself: pass it, or set the minimum to 0")
    components, count = label_lesions(labels > 0)
    if count == 0:
        return labels
    flat = enhancement_per_lesion(volume, components, count, cord_signal) < min_enhancement
    flat[0] = False  # component 0 is the background
    result = labels.copy()
    result[flat[components]] = 0
    return result


def single_type_per_lesion(labels: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray:
    """Relabel every lesion with one type: largest summed probability, else majority vote."""
    components, count = label_lesions(labels > 0)
    if count == 0:
        return labels
    if probabilities is not None:
        scores = probability_sums_per_lesion(tumour_probabilities(probabilities, labels.shape), components, count)
    else:
        scores = class_counts_per_lesion(labels, components, count)
    # np.argmax returns the first maximum: ties go to the lower label value.
    lesion_type = np.asarray(TUMOUR_VALUES)[np.argmax(scores, axis=1)]
    result = labels.copy()
    inside = components > 0
    result[inside] = lesion_type[components[inside]].astype(labels.dtype)
    return result
