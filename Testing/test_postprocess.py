"""Postprocessing on hand-made label maps: holes, small lesions in mm3, one type per lesion."""

from __future__ import annotations

import numpy as np
import pytest

from batseg.errors import BATsegError
from batseg.postprocess import postprocess
from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3

SPACING = (3.3, 0.47, 0.47)  # (z, y, x)
VOXEL_MM3 = 3.3 * 0.47 * 0.47  # 0.72897 mm3


def test_enclosed_hole_is_filled_and_input_untouched() -> None:
    labels = np.zeros((7, 9, 9), dtype=np.uint8)
    labels[1:6, 2:7, 2:7] = 2
    labels[3, 4, 4] = 0  # a one-voxel hole, enclosed in 3-D
    original = labels.copy()
    result = postprocess(labels, SPACING, min_volume_mm3=0)
    assert result[3, 4, 4] == 2
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(labels, original)
    assert postprocess(labels, SPACING, fill_holes=False, min_volume_mm3=0)[3, 4, 4] == 0


def test_hole_keeps_other_class_voxels_and_fills_only_background() -> None:
    labels = np.zeros((9, 9, 9), dtype=np.uint8)
    labels[1:8, 1:8, 1:8] = 1
    labels[3:6, 3:6, 3:6] = 0  # 27-voxel cavity ...
    labels[4, 4, 4] = 3  # ... holding one astrocytoma voxel
    result = postprocess(labels, SPACING, min_volume_mm3=0)
    assert result[4, 4, 4] == 3
    assert np.count_nonzero(result[3:6, 3:6, 3:6] == 1) == 26
    assert np.count_nonzero(result == 0) == np.count_nonzero(labels == 0) - 26


def test_ring_on_one_slice_is_not_a_3d_hole() -> None:
    labels = np.zeros((5, 9, 9), dtype=np.uint8)
    labels[2, 2:7, 2:7] = 4
    labels[2, 3:6, 3:6] = 0  # open to the slices above and below
    result = postprocess(labels, SPACING, min_volume_mm3=0)
    assert np.count_nonzero(result[2, 3:6, 3:6]) == 0


def block(labels: np.ndarray, start: tuple[int, int, int], voxels: int, value: int) -> None:
    """Paint `voxels` voxels on one row of one slice starting at `start`."""
    z, y, x = start
    labels[z, y, x:x + voxels] = value


@pytest.mark.parametrize("voxels, kept", [(27, False), (28, True)])
def test_small_lesion_removed_at_the_mm3_threshold(voxels: int, kept: bool) -> None:
    # 20 mm3 at 0.72897 mm3 per voxel = 27.4 voxels.
    labels = np.zeros((4, 6, 40), dtype=np.uint8)
    block(labels, (1, 2, 2), voxels, 4)
    result = postprocess(labels, SPACING, min_volume_mm3=20.0)
    assert np.count_nonzero(result) == (voxels if kept else 0)


def test_lesion_exactly_at_the_threshold_is_kept() -> None:
    labels = np.zeros((4, 6, 40), dtype=np.uint8)
    block(labels, (1, 2, 2), 30, 1)
    assert np.count_nonzero(postprocess(labels, SPACING, min_volume_mm3=30 * VOXEL_MM3)) == 30
    assert np.count_nonzero(postprocess(labels, SPACING, min_volume_mm3=30.001 * VOXEL_MM3)) == 0


def test_removal_judges_the_tumour_union_with_26_connectivity() -> None:
    labels = np.zeros((5, 8, 40), dtype=np.uint8)
    block(labels, (1, 2, 2), 20, 1)
    block(labels, (1, 2, 22), 10, 2)  # same lesion, other type: 30 voxels = 21.9 mm3 in all
    block(labels, (2, 5, 2), 15, 3)  # separate lesion ...
    block(labels, (3, 6, 17), 15, 3)  # ... touching it only at a corner (26-connected): 30 voxels
    result = postprocess(labels, SPACING, min_volume_mm3=20.0)
    np.testing.assert_array_equal(result, labels)
    assert np.count_nonzero(postprocess(labels, SPACING, min_volume_mm3=22.0)) == 0


def test_default_minimum_volume_is_below_lemays_200_mm3() -> None:
    # A hemangioblastoma nodule 5 mm across (65 mm3) must survive the default.
    assert 0 < DEFAULT_MIN_VOLUME_MM3 < 65.0
    labels = np.zeros((3, 20, 20), dtype=np.uint8)
    labels[1, 5:15, 5:15] = 4  # 100 voxels = 72.9 mm3
    assert np.count_nonzero(postprocess(labels, SPACING)) == 100


def mixed_lesions() -> np.ndarray:
    """Lesion 1: 20 ependymoma + 10 astrocytoma voxels; lesion 2: 12 meningioma voxels."""
    labels = np.zeros((4, 10, 40), dtype=np.uint8)
    block(labels, (1, 2, 2), 20, 2)
    block(labels, (1, 2, 22), 10, 3)
    block(labels, (1, 7, 2), 12, 1)
    return labels


def test_one_type_per_lesion_by_majority_vote() -> None:
    labels = mixed_lesions()
    result = postprocess(labels, SPACING, min_volume_mm3=0, one_type_per_lesion=True)
    assert np.all(result[1, 2, 2:32] == 2)
    assert np.all(result[1, 7, 2:14] == 1)
    assert np.count_nonzero(result) == np.count_nonzero(labels)
    assert np.count_nonzero(postprocess(labels, SPACING, min_volume_mm3=0) == 3) == 10  # off by default


@pytest.mark.parametrize("channels", [5, 4])
def test_one_type_per_lesion_by_summed_probability(channels: int) -> None:
    labels = mixed_lesions()
    probabilities = np.zeros((5, *labels.shape), dtype=np.float32)
    probabilities[0] = 1.0
    inside = labels > 0
    probabilities[:, inside] = 0.0
    # Inside lesion 1, astrocytoma is second everywhere but close, and wins the sum on its 10
    # voxels by far: ependymoma sum 20*0.5 + 10*0.05 = 10.5 < astrocytoma 20*0.45 + 10*0.9 = 18.
    lesion_one = np.zeros_like(inside)
    lesion_one[1, 2, 2:32] = True
    probabilities[2, lesion_one] = 0.5
    probabilities[3, lesion_one] = 0.45
    probabilities[2, 1, 2, 22:32] = 0.05
    probabilities[3, 1, 2, 22:32] = 0.9
    probabilities[1, 1, 7, 2:14] = 0.8
    given = probabilities if channels == 5 else probabilities[1:]
    result = postprocess(labels, SPACING, probabilities=given, min_volume_mm3=0, one_type_per_lesion=True)
    assert np.all(result[1, 2, 2:32] == 3)
    assert np.all(result[1, 7, 2:14] == 1)


def test_bad_inputs_raise_one_line_errors() -> None:
    labels = mixed_lesions()
    with pytest.raises(BATsegError, match="do not match"):
        postprocess(labels, SPACING, probabilities=np.zeros((5, 2, 2, 2)), one_type_per_lesion=True)
    with pytest.raises(BATsegError, match="channels"):
        postprocess(labels, SPACING, probabilities=np.zeros((3, *labels.shape)), one_type_per_lesion=True)
    with pytest.raises(BATsegError, match="only 0"):
        postprocess(labels + 5, SPACING)
    with pytest.raises(BATsegError, match="spacing"):
        postprocess(labels, (1.0, 0.0, 1.0))
