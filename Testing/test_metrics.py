"""Metrics: Dice and HD95 against medpy, the 450 mm rule, lesion detection, types, aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from batseg.errors import BATsegError
from batseg.metrics import HD95_MISSING_MM, aggregate, detection, dice, evaluate_case, hd95

SPACING = (3.3, 0.47, 0.47)  # (z, y, x): thick sagittal slices, fine in-plane


def random_blobs(rng: np.random.Generator, shape=(12, 48, 48), sigma=(0.8, 4.0, 4.0), fraction=0.85) -> np.ndarray:
    """Smooth random blobs (a realistic, irregular, possibly multi-component mask)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, fraction)


@pytest.mark.parametrize("seed", range(6))
def test_dice_and_hd95_match_medpy_on_anisotropic_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = random_blobs(rng)
    pred = ndimage.binary_dilation(gt, iterations=1) if seed % 2 else gt.copy()
    pred ^= rng.random(gt.shape) < 0.02  # flip 2% of the voxels: scattered errors far from the surface
    assert dice(pred, gt) == pytest.approx(medpy_binary.dc(pred, gt), rel=1e-12)
    expected = medpy_binary.hd95(pred, gt, voxelspacing=SPACING)
    assert expected > 0
    assert hd95(pred, gt, SPACING) == pytest.approx(expected, rel=1e-9)


def test_hd95_uses_the_spacing_and_is_exact_for_a_shift() -> None:
    gt = np.zeros((10, 30, 30), dtype=bool)
    gt[3:7, 10:20, 10:20] = True
    pred = np.roll(gt, 1, axis=0)  # shifted by one thick slice: 3.3 mm
    assert hd95(pred, gt, SPACING) == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=SPACING))
    assert hd95(pred, gt, SPACING) == pytest.approx(3.3)
    assert hd95(pred, gt, (1.0, 1.0, 1.0)) == pytest.approx(1.0)


def test_hd95_small_masks_far_from_each_other_in_a_large_volume() -> None:
    # Both masks occupy a small corner of the array: the cropped computation must equal medpy's.
    gt = np.zeros((20, 200, 200), dtype=bool)
    pred = np.zeros_like(gt)
    gt[2:5, 10:30, 15:25] = True
    pred[6:8, 150:160, 170:190] = True
    assert hd95(pred, gt, SPACING) == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=SPACING), rel=1e-9)


def test_missing_prediction_or_truth_scores_450_and_both_empty_scores_0() -> None:
    full = np.zeros((5, 8, 8), dtype=bool)
    full[1:3, 2:5, 2:5] = True
    empty = np.zeros_like(full)
    assert HD95_MISSING_MM == 450.0
    assert hd95(empty, full, SPACING) == 450.0
    assert hd95(full, empty, SPACING) == 450.0
    assert hd95(empty, empty, SPACING) == 0.0
    assert dice(empty, full) == 0.0
    assert dice(empty, empty) == 1.0


def test_shape_mismatch_is_a_one_line_error() -> None:
    with pytest.raises(BATsegError, match="differ in shape"):
        dice(np.zeros((2, 3, 4), bool), np.zeros((2, 3, 5), bool))


# Voxel of 3.0 x 1.0 x 0.5 mm = 1.5 mm3: 4 voxels = 6.0 mm3 (detected), 3 voxels = 4.5 mm3 (not).
DETECTION_SPACING = (3.0, 1.0, 0.5)


def lesion_with_overlap(overlap_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """A true ependymoma lesion and a prediction overlapping it by exactly `overlap_voxels` voxels."""
    gt = np.zeros((6, 20, 20), dtype=np.uint8)
    gt[2, 5:10, 5:10] = 2  # 25 voxels
    pred = np.zeros_like(gt)
    pred[2, 9, 5:5 + overlap_voxels] = 2  # inside the true lesion ...
    pred[2, 10:12, 5:5 + overlap_voxels] = 2  # ... and continuing outside it
    return pred, gt


@pytest.mark.parametrize("overlap_voxels, detected", [(3, False), (4, True), (5, True)])
def test_detection_threshold_is_6_mm3_inclusive(overlap_voxels: int, detected: bool) -> None:
    pred, gt = lesion_with_overlap(overlap_voxels)
    result = detection(pred, gt, DETECTION_SPACING)
    assert result["true_lesions"] == 1
    assert result["detected_lesions"] == int(detected)
    assert result["true_positive_detection_rate"] == float(detected)
    assert result["predicted_lesions"] == 1
    assert result["false_positive_lesions"] == int(not detected)
    assert result["patient_detected"] is detected


def test_detection_with_isotropic_voxels_5_vs_7_mm3() -> None:
    gt = np.zeros((4, 12, 12), dtype=np.uint8)
    gt[1:3, 2:8, 2:8] = 1
    for overlap, detected in ((5, False), (7, True)):
        pred = np.zeros_like(gt)
        pred[1, 2, 2:2 + overlap] = 1
        assert detection(pred, gt, (1.0, 1.0, 1.0))["detected_lesions"] == int(detected)
        assert detection(pred, gt, (1.0, 1.0, 1.0), min_overlap_mm3=5.0)["detected_lesions"] == 1


def test_detection_counts_rates_volumes_and_types() -> None:
    gt = np.zeros((8, 30, 30), dtype=np.uint8)
    gt[1:3, 2:8, 2:8] = 2  # lesion A, ependymoma, 72 voxels
    gt[5:7, 20:26, 20:26] = 4  # lesion B, hemangioblastoma, 72 voxels
    gt[5, 2:4, 20:22] = 1  # lesion C, meningioma, 4 voxels: missed
    pred = np.zeros_like(gt)
    pred[1:3, 2:8, 2:8] = 3  # lesion A predicted mostly as astrocytoma ...
    pred[1, 2:4, 2:8] = 2  # ... with 12 ependymoma voxels
    pred[5:7, 20:26, 20:26] = 4  # lesion B exactly
    pred[1, 15:18, 15:18] = 1  # a false positive lesion, 9 voxels
    spacing = (1.0, 1.0, 1.0)
    result = detection(pred, gt, spacing)
    assert (result["true_lesions"], result["detected_lesions"]) == (3, 2)
    assert (result["predicted_lesions"], result["false_positive_lesions"]) == (3, 1)
    assert result["true_positive_detection_rate"] == pytest.approx(2 / 3)
    assert result["false_positive_detection_rate"] == pytest.approx(1 / 3)
    assert result["voxel_precision"] == pytest.approx(144 / 153)
    assert result["voxel_recall"] == pytest.approx(144 / 148)
    assert result["relative_volume_difference"] == pytest.approx((148 - 153) / 148)
    assert result["absolute_volume_difference"] == pytest.approx(5 / 148)
    confusion = np.asarray(result["type_confusion"])
    expected = np.zeros((4, 4), dtype=int)
    expected[1, 2] = 1  # ependymoma predicted as astrocytoma
    expected[3, 3] = 1  # hemangioblastoma right
    np.testing.assert_array_equal(confusion, expected)
    assert (result["types_correct"], result["types_assessed"]) == (1, 2)
    assert result["type_accuracy"] == pytest.approx(0.5)


def test_detection_on_boolean_masks_has_no_type_statistics() -> None:
    pred, gt = lesion_with_overlap(5)
    result = detection(pred > 0, gt > 0, DETECTION_SPACING)
    assert result["detected_lesions"] == 1
    assert result["type_confusion"] is None and result["type_accuracy"] is None


def test_evaluate_case_wrong_type_scores_0_and_450_and_reports_false_positive_class() -> None:
    gt = np.zeros((6, 20, 20), dtype=np.uint8)
    gt[2:4, 5:12, 5:12] = 2
    pred = np.where(gt > 0, 3, 0).astype(np.uint8)
    result = evaluate_case(pred, gt, SPACING)
    assert list(result["classes"]) == ["ependymoma"]
    assert result["classes"]["ependymoma"]["dice"] == 0.0
    assert result["classes"]["ependymoma"]["hd95"] == 450.0
    voxel_mm3 = float(np.prod(SPACING))
    assert result["false_positive_classes_mm3"] == {"astrocytoma": pytest.approx(98 * voxel_mm3)}
    assert result["tumour"]["dice"] == 1.0 and result["tumour"]["hd95"] == 0.0
    assert result["detection"]["type_confusion"][1][2] == 1


def test_evaluate_case_rejects_out_of_range_labels() -> None:
    gt = np.zeros((3, 4, 4), dtype=np.uint8)
    pred = gt.copy()
    pred[0, 0, 0] = 7
    with pytest.raises(BATsegError, match="only 0"):
        evaluate_case(pred, gt, SPACING)


def test_aggregate_per_class_means_detection_and_healthy_cases() -> None:
    shape = (6, 20, 20)
    perfect_gt = np.zeros(shape, dtype=np.uint8)
    perfect_gt[2:4, 5:12, 5:12] = 1
    wrong_gt = np.zeros(shape, dtype=np.uint8)
    wrong_gt[2:4, 5:12, 5:12] = 2
    wrong_pred = np.where(wrong_gt > 0, 3, 0).astype(np.uint8)
    healthy = np.zeros(shape, dtype=np.uint8)
    flagged = healthy.copy()
    flagged[1:3, 1:6, 1:6] = 4
    half_gt = np.zeros(shape, dtype=np.uint8)
    half_gt[2:4, 5:12, 5:12] = 1
    half_pred = half_gt.copy()
    half_pred[3] = 0  # half of the meningioma is missed
    cases = [
        evaluate_case(perfect_gt, perfect_gt, SPACING),
        evaluate_case(wrong_pred, wrong_gt, SPACING),
        evaluate_case(healthy, healthy, SPACING),
        evaluate_case(flagged, healthy, SPACING),
        evaluate_case(half_pred, half_gt, SPACING),
    ]
    summary = aggregate(cases)
    half_dice = cases[4]["classes"]["meningioma"]["dice"]
    half_hd95 = cases[4]["classes"]["meningioma"]["hd95"]
    assert half_dice == pytest.approx(2 * 49 / (49 + 98))
    assert summary["n_cases"] == 5
    assert summary["per_class"]["meningioma"]["n_cases"] == 2
    assert summary["per_class"]["meningioma"]["dice_mean"] == pytest.approx((1.0 + half_dice) / 2)
    assert summary["per_class"]["meningioma"]["hd95_mean"] == pytest.approx(half_hd95 / 2)
    assert summary["per_class"]["ependymoma"] == pytest.approx(
        {"n_cases": 1, "dice_mean": 0.0, "dice_std": 0.0, "hd95_mean": 450.0, "hd95_std": 0.0}
    )
    assert summary["per_class"]["astrocytoma"]["n_cases"] == 0
    assert summary["per_class"]["astrocytoma"]["dice_mean"] is None
    assert summary["mean_over_classes"]["n_classes"] == 2
    assert summary["mean_over_classes"]["dice"] == pytest.approx(((1.0 + half_dice) / 2 + 0.0) / 2)
    assert summary["mean_over_classes"]["hd95"] == pytest.approx((half_hd95 / 2 + 450.0) / 2)
    assert summary["false_positive_class_cases"] == {
        "meningioma": 0, "ependymoma": 0, "astrocytoma": 1, "hemangioblastoma": 1,
    }
    assert (summary["patients_with_tumour"], summary["patient_sensitivity"]) == (3, 1.0)
    assert (summary["healthy_cases"], summary["healthy_cases_with_prediction"]) == (2, 1)
    assert summary["healthy_specificity"] == pytest.approx(0.5)
    pooled = summary["detection"]
    assert (pooled["true_lesions"], pooled["detected_lesions"]) == (3, 3)
    assert (pooled["predicted_lesions"], pooled["false_positive_lesions"]) == (4, 1)
    assert pooled["false_positive_detection_rate"] == pytest.approx(0.25)
    assert (pooled["types_correct"], pooled["types_assessed"]) == (2, 3)
    assert pooled["type_confusion"][0][0] == 2 and pooled["type_confusion"][1][2] == 1


@pytest.mark.parametrize("corner", ["inside", "low edge", "high edge"])
def test_hd95_of_masks_on_the_array_border_matches_medpy(corner: str) -> None:
    # The crop around both masks (ndimage.find_objects, grown by one voxel and clipped) must keep
    # the erosion at the array border: the border counts as outside, in the crop as in the array.
    gt = np.zeros((8, 40, 40), dtype=bool)
    pred = np.zeros_like(gt)
    where = {"inside": np.s_[2:5, 10:20, 12:22], "low edge": np.s_[0:3, 0:9, 0:11], "high edge": np.s_[5:8, 30:40, 29:40]}
    gt[where[corner]] = True
    pred[where[corner]] = True
    pred = np.roll(pred, 2, axis=2) if corner != "high edge" else np.roll(pred, -2, axis=1)
    assert hd95(pred, gt, SPACING) == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=SPACING), rel=1e-9)
