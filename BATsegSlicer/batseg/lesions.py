"""Connected tumour lesions: the one definition of "a lesion" shared by postprocessing, the
per-lesion report and the detection metrics.

A lesion is a connected component of the union of the tumour classes 1-4 (never of one class
alone: a voxel-wise model may paint one tumour with two types, and that is still one lesion).

Decision (connectivity): 26-connectivity (faces, edges and corners). Sagittal T1 Gd volumes have
3-4 mm slices against about 0.5 mm in-plane, so a lesion's cross-section shifts by a voxel or so
from one thick slice to the next; with 6- or 18-connectivity such a lesion touching only along
an in-plane diagonal across slices would split into several pieces, each of which could then be
dropped as "small" or typed separately. The diagonal neighbour across a slice is only
sqrt(3.3^2 + 2 * 0.47^2) = 3.37 mm away versus 3.3 mm for the face neighbour, so 26-neighbours
are as close as face neighbours physically. The same choice is the default of
connected-components-3d; scipy.ndimage is used here because it is already a dependency.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from batseg.errors import BATsegError
from batseg.labels import NUM_CLASSES, TUMOUR_CLASSES

# 3x3x3 block of ones: 26-connectivity (see the module docstring).
LESION_STRUCTURE = np.ones((3, 3, 3), dtype=bool)

TUMOUR_VALUES: tuple[int, ...] = tuple(c.value for c in TUMOUR_CLASSES)


def check_label_map(labels: np.ndarray, what: str = "label map") -> None:
    """Raise a one-line BATsegError unless `labels` is a 3-D integer map with values 0-4."""
    if labels.ndim != 3:
        raise BATsegError(f"the {what} must be 3-D, got {labels.ndim}-D: pass a single 3-D label volume")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise BATsegError(f"the {what} must hold integer labels, got {labels.dtype}: cast it to an integer type")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise BATsegError(
            f"the {what} holds values {int(labels.min())}..{int(labels.max())}; "
            f"only 0 (background) to {NUM_CLASSES - 1} (tumour classes) are allowed"
        )


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (26-connectivity) of a binary mask: (component map 1..n, n)."""
    components, count = ndimage.label(np.asarray(mask, dtype=bool), structure=LESION_STRUCTURE)
    return components, int(count)


def voxel_volume_mm3(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mm3 for a spacing given in the array's axis order."""
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise BATsegError(f"the voxel spacing must be three positive numbers in mm, got {tuple(spacing)}")
    return float(np.prod(np.asarray(spacing, dtype=np.float64)))


def class_counts_per_lesion(labels: np.ndarray, components: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each tumour class in each lesion: array (count + 1, 4), row 0 unused."""
    flat_components = components.ravel()
    flat_labels = labels.ravel()
    counts = np.zeros((count + 1, len(TUMOUR_VALUES)), dtype=np.int64)
    for column, value in enumerate(TUMOUR_VALUES):
        counts[:, column] = np.bincount(flat_components, weights=(flat_labels == value), minlength=count + 1)
    return counts


def tumour_probabilities(probabilities: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The four tumour-class probability maps (4, z, y, x) from a 5- or 4-channel array.

    Decision: both layouts are accepted. A 5-channel array is the network's softmax with
    background in channel 0 (nnU-Net's order), so channels 1-4 are the tumour classes; a
    4-channel array already holds only the tumour classes 1-4 in label order.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 4 or tuple(probabilities.shape[1:]) != tuple(shape):
        raise BATsegError(
            f"probabilities of shape {probabilities.shape} do not match the label map {tuple(shape)}: "
            "pass (5, z, y, x) or (4, z, y, x) on the label map's grid"
        )
    if probabilities.shape[0] == NUM_CLASSES:
        return probabilities[1:]
    if probabilities.shape[0] == NUM_CLASSES - 1:
        return probabilities
    raise BATsegError(
        f"probabilities have {probabilities.shape[0]} channels; expected {NUM_CLASSES} (with background) "
        f"or {NUM_CLASSES - 1} (tumour classes only)"
    )


def probability_sums_per_lesion(tumour_probs: np.ndarray, components: np.ndarray, count: int) -> np.ndarray:
    """Summed probability of each tumour class over each lesion: array (count + 1, 4)."""
    flat_components = components.ravel()
    sums = np.zeros((count + 1, len(TUMOUR_VALUES)), dtype=np.float64)
    for column in range(len(TUMOUR_VALUES)):
        sums[:, column] = np.bincount(
            flat_components, weights=tumour_probs[column].ravel().astype(np.float64), minlength=count + 1
        )
    return sums


def mean_tumour_probability_per_lesion(tumour_probs: np.ndarray, components: np.ndarray, count: int) -> np.ndarray:
    """Mean over each lesion's voxels of the probability of tumour of any type: array (count + 1,).

    Entry 0 (the background component) is 0. The sum of the four tumour-class probabilities is
    one minus the background probability: how sure the network is that the voxel is tumour at
    all, whatever the type.
    """
    sums = probability_sums_per_lesion(tumour_probs, components, count).sum(axis=1)
    sizes = np.bincount(components.ravel(), minlength=count + 1).astype(np.float64)
    means = np.divide(sums, sizes, out=np.zeros_like(sums), where=sizes > 0)
    means[0] = 0.0
    return means
