"""Segmentation metrics of the BATseg paper and of Lemay et al., per case and aggregated.

Arrays are (z, y, x) with `spacing` in mm in the same axis order. Fractions are in [0, 1]
(Dice 0.62, not 62); the CLI table prints percentages. Decisions the papers leave open:

- Dice of two empty masks is 1.0 (nothing to find, nothing found). Per-class scores are only
  computed for classes present in the ground truth, so this case arises only in direct calls.
- HD95: 95th percentile of the pooled distances from each surface voxel of one mask to the
  nearest surface voxel of the other, both directions (the definition of medpy's `hd95`).
  Surface voxels are the mask minus its 6-connected erosion; distances between voxel centres
  in mm with the anisotropic spacing. The paper's rule: an empty prediction against a non-empty
  truth (or the reverse) scores HD95_MISSING_MM = 450 mm; two empty masks score 0 mm.
- Per-class scores (METHOD.md 1): averaged over the cases whose ground truth contains the
  class; a case whose tumour is predicted as another type scores Dice 0 and HD95 450 mm for its
  true class; classes predicted but absent from the truth are reported separately as false
  positive classes and do not enter the per-class means.
- Lesions are 26-connected components of the tumour union (`batseg.lesions`). A true lesion is
  detected when its overlap with the predicted tumour (all types) is at least 6 mm3 (Lemay et
  al.); a predicted lesion is a false positive when its overlap with the true tumour is below
  the same 6 mm3, so one stray voxel touching a true lesion does not make a prediction count.
- Lemay et al.'s precision and recall are voxel-wise over the tumour union (their Table 4 gives
  precision 78.7% next to a 98.7% detection rate): precision = TP / predicted voxels, recall =
  TP / true voxels. Relative volume difference = (V_true - V_pred) / V_true (negative means
  over-segmentation, their sign), absolute volume difference = |relative|.
- Lesion type: the true type of a detected lesion is its majority ground-truth class; the
  predicted type is the majority predicted class over the predicted tumour voxels inside the
  true lesion. Ties go to the lower label value. Type statistics need label maps: a boolean
  mask carries no type, and then they are None.
- Aggregation: Dice and HD95 are means over cases; detection rates and type accuracy pool the
  lesion counts of all cases (a case without predicted lesions has no false positive rate of
  its own); voxel precision/recall and volume differences are means over the cases where they
  are defined (cases with tumour; precision also needs a prediction).
- Patient-level sensitivity (Stanford poster): share of patients with a tumour in whom at
  least one true lesion is detected. Healthy cases (no tumour in the truth) are counted with
  and without any predicted lesion (a specificity-like figure).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from batseg.errors import BATsegError
from batseg.labels import TUMOUR_CLASSES
from batseg.lesions import TUMOUR_VALUES, check_label_map, class_counts_per_lesion, label_lesions, voxel_volume_mm3

HD95_MISSING_MM = 450.0  # the BATseg paper's score for a missing prediction
DETECTION_MIN_OVERLAP_MM3 = 6.0  # Lemay et al.
TYPE_KEYS: tuple[str, ...] = tuple(c.key for c in TUMOUR_CLASSES)

# 6-connected erosion: a voxel is on the surface when one of its face neighbours is outside.
_SURFACE_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def dice(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Dice coefficient 2|P n G| / (|P| + |G|) of two binary masks; 1.0 when both are empty."""
    pred_mask, gt_mask = _as_masks(pred_mask, gt_mask)
    total = int(np.count_nonzero(pred_mask)) + int(np.count_nonzero(gt_mask))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred_mask & gt_mask)) / total


def hd95(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile surface distance in mm (450 mm when exactly one mask is empty)."""
    pred_mask, gt_mask = _as_masks(pred_mask, gt_mask)
    pred_empty, gt_empty = not pred_mask.any(), not gt_mask.any()
    if pred_empty and gt_empty:
        return 0.0
    if pred_empty or gt_empty:
        return HD95_MISSING_MM
    box = _joint_box(pred_mask, gt_mask)
    pred_surface = _surface(pred_mask[box])
    gt_surface = _surface(gt_mask[box])
    sampling = np.asarray(spacing, dtype=np.float64)
    pred_to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=sampling)[pred_surface]
    gt_to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)[gt_surface]
    return float(np.percentile(np.concatenate([pred_to_gt, gt_to_pred]), 95))


def _as_masks(pred_mask: np.ndarray, gt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as boolean arrays of the same shape."""
    pred_mask, gt_mask = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    _check_same_shape(pred_mask, gt_mask)
    return pred_mask, gt_mask


def _check_same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    """A one-line error when prediction and ground truth are not on the same grid."""
    if pred.shape != gt.shape:
        raise BATsegError(
            f"prediction {pred.shape} and ground truth {gt.shape} differ in shape: resample one onto the other"
        )


def _joint_box(first: np.ndarray, second: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of both masks grown by one voxel, clipped to the array.

    Distance transforms inside it are exact (every surface voxel lies inside), and the
    one-voxel margin keeps the erosion at the box edge identical to the erosion of the full
    array, whose border counts as outside.
    """
    union = first | second
    (box,) = ndimage.find_objects(union.view(np.uint8))  # one object: every voxel of either mask (never empty here)
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, union.shape))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (or on the array border)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_SURFACE_STRUCTURE, border_value=0)


def detection(
    pred_labels_or_mask: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    min_overlap_mm3: float = DETECTION_MIN_OVERLAP_MM3,
) -> dict[str, Any]:
    """Lesion-wise detection, voxel precision/recall, volume differences and lesion types."""
    pred, gt = np.asarray(pred_labels_or_mask), np.asarray(gt)
    _check_same_shape(pred, gt)
    if min_overlap_mm3 < 0:
        raise BATsegError(f"the minimum detection overlap must be >= 0 mm3, got {min_overlap_mm3}")
    voxel_mm3 = voxel_volume_mm3(spacing)
    pred_tumour, gt_tumour = pred > 0, gt > 0
    gt_components, gt_count = label_lesions(gt_tumour)
    pred_components, pred_count = label_lesions(pred_tumour)
    gt_overlap_mm3 = _overlap_per_lesion(gt_components, gt_count, pred_tumour) * voxel_mm3
    pred_overlap_mm3 = _overlap_per_lesion(pred_components, pred_count, gt_tumour) * voxel_mm3
    # Volumes are voxel counts times a float voxel volume: compare with a rounding tolerance so
    # that an overlap of exactly 6 mm3 is not lost to the last bit. A lesion without any overlap
    # is never a match, even with a threshold of 0.
    threshold = min_overlap_mm3 * (1.0 - 1e-9)
    detected = (gt_overlap_mm3 >= threshold) & (gt_overlap_mm3 > 0)
    false_positive = (pred_overlap_mm3 < threshold) | (pred_overlap_mm3 == 0)
    result: dict[str, Any] = {
        "min_overlap_mm3": float(min_overlap_mm3),
        "true_lesions": gt_count,
        "detected_lesions": int(detected.sum()),
        "predicted_lesions": pred_count,
        "false_positive_lesions": int(false_positive.sum()),
        "true_positive_detection_rate": _ratio(int(detected.sum()), gt_count),
        "false_positive_detection_rate": _ratio(int(false_positive.sum()), pred_count),
        "patient_detected": bool(detected.any()) if gt_count else None,
        **_voxel_agreement(pred_tumour, gt_tumour, voxel_mm3),
    }
    result.update(_type_statistics(pred, gt, gt_components, gt_count, detected))
    return result


def _overlap_per_lesion(components: np.ndarray, count: int, other_mask: np.ndarray) -> np.ndarray:
    """Voxels of each lesion 1..count that lie inside `other_mask` (array of length count)."""
    return np.bincount(components.ravel(), weights=other_mask.ravel(), minlength=count + 1)[1:]


def _ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0 (undefined, not 0)."""
    return float(numerator) / float(denominator) if denominator else None


def _voxel_agreement(pred_tumour: np.ndarray, gt_tumour: np.ndarray, voxel_mm3: float) -> dict[str, Any]:
    """Lemay et al.'s voxel precision/recall and volume differences over the tumour union."""
    true_positive = int(np.count_nonzero(pred_tumour & gt_tumour))
    pred_voxels, gt_voxels = int(np.count_nonzero(pred_tumour)), int(np.count_nonzero(gt_tumour))
    relative = _ratio(gt_voxels - pred_voxels, gt_voxels)
    return {
        "pred_volume_mm3": pred_voxels * voxel_mm3,
        "gt_volume_mm3": gt_voxels * voxel_mm3,
        "voxel_precision": _ratio(true_positive, pred_voxels),
        "voxel_recall": _ratio(true_positive, gt_voxels),
        "relative_volume_difference": relative,
        "absolute_volume_difference": None if relative is None else abs(relative),
    }


def _type_statistics(
    pred: np.ndarray, gt: np.ndarray, gt_components: np.ndarray, gt_count: int, detected: np.ndarray
) -> dict[str, Any]:
    """4x4 confusion (rows true type, columns predicted type) of the detected true lesions."""
    if pred.dtype == bool or gt.dtype == bool:
        return {"type_confusion": None, "types_correct": None, "types_assessed": None, "type_accuracy": None}
    check_label_map(pred, "prediction")
    check_label_map(gt, "ground truth")
    true_counts = class_counts_per_lesion(gt, gt_components, gt_count)
    # Predicted classes over the true lesions' voxels: background voxels fall outside 1-4.
    predicted_counts = class_counts_per_lesion(pred, gt_components, gt_count)
    confusion = np.zeros((len(TUMOUR_VALUES), len(TUMOUR_VALUES)), dtype=np.int64)
    for lesion in np.nonzero(detected)[0] + 1:
        confusion[np.argmax(true_counts[lesion]), np.argmax(predicted_counts[lesion])] += 1
    assessed = int(confusion.sum())
    correct = int(np.trace(confusion))
    return {
        "type_confusion": confusion.tolist(),
        "types_correct": correct,
        "types_assessed": assessed,
        "type_accuracy": _ratio(correct, assessed),
    }


def evaluate_case(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], min_overlap_mm3: float = DETECTION_MIN_OVERLAP_MM3
) -> dict[str, Any]:
    """Per-class Dice/HD95 (classes in the truth), whole-tumour scores, false positive classes, detection."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    check_label_map(pred, "prediction")
    check_label_map(gt, "ground truth")
    _check_same_shape(pred, gt)
    voxel_mm3 = voxel_volume_mm3(spacing)
    classes: dict[str, dict[str, float]] = {}
    false_positive_classes: dict[str, float] = {}
    for tumour in TUMOUR_CLASSES:
        pred_mask, gt_mask = pred == tumour.value, gt == tumour.value
        if gt_mask.any():
            classes[tumour.key] = _overlap_scores(pred_mask, gt_mask, spacing, voxel_mm3)
        elif pred_mask.any():
            false_positive_classes[tumour.key] = int(np.count_nonzero(pred_mask)) * voxel_mm3
    has_tumour = bool(gt.any())
    return {
        "has_tumour": has_tumour,
        "classes": classes,
        "tumour": _overlap_scores(pred > 0, gt > 0, spacing, voxel_mm3) if has_tumour else None,
        "false_positive_classes_mm3": false_positive_classes,
        "healthy_with_prediction": None if has_tumour else bool(pred.any()),
        "detection": detection(pred, gt, spacing, min_overlap_mm3),
    }


def _overlap_scores(
    pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: Sequence[float], voxel_mm3: float
) -> dict[str, float]:
    """Dice, HD95 and both volumes of one class (or of the tumour union)."""
    return {
        "dice": dice(pred_mask, gt_mask),
        "hd95": hd95(pred_mask, gt_mask, spacing),
        "gt_volume_mm3": int(np.count_nonzero(gt_mask)) * voxel_mm3,
        "pred_volume_mm3": int(np.count_nonzero(pred_mask)) * voxel_mm3,
    }


def aggregate(case_results: list[dict]) -> dict[str, Any]:
    """Dataset-level figures from `evaluate_case` results (see the module docstring)."""
    per_class = {
        key: _class_summary([r["classes"][key] for r in case_results if key in r["classes"]]) for key in TYPE_KEYS
    }
    present = [summary for summary in per_class.values() if summary["n_cases"]]
    tumour_cases = [r for r in case_results if r["has_tumour"]]
    healthy_cases = [r for r in case_results if not r["has_tumour"]]
    healthy_flagged = sum(1 for r in healthy_cases if r["healthy_with_prediction"])
    patients_detected = sum(1 for r in tumour_cases if r["detection"]["patient_detected"])
    return {
        "n_cases": len(case_results),
        "per_class": per_class,
        "mean_over_classes": {
            "dice": _mean([s["dice_mean"] for s in present]),
            "hd95": _mean([s["hd95_mean"] for s in present]),
            "n_classes": len(present),
        },
        "tumour": _class_summary([r["tumour"] for r in tumour_cases]),
        "false_positive_class_cases": {
            key: sum(1 for r in case_results if key in r["false_positive_classes_mm3"]) for key in TYPE_KEYS
        },
        "detection": _pooled_detection([r["detection"] for r in case_results]),
        "patient_sensitivity": _ratio(patients_detected, len(tumour_cases)),
        "patients_with_tumour": len(tumour_cases),
        "healthy_cases": len(healthy_cases),
        "healthy_cases_with_prediction": healthy_flagged,
        "healthy_specificity": _ratio(len(healthy_cases) - healthy_flagged, len(healthy_cases)),
    }


def _mean(values: list[float]) -> float | None:
    """Mean of the values that are defined, None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _std(values: list[float]) -> float | None:
    """Population standard deviation of the defined values, None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.std(values)) if values else None


def _class_summary(scores: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and standard deviation of Dice and HD95 over the cases holding a class."""
    dices, distances = [s["dice"] for s in scores], [s["hd95"] for s in scores]
    return {
        "n_cases": len(scores),
        "dice_mean": _mean(dices),
        "dice_std": _std(dices),
        "hd95_mean": _mean(distances),
        "hd95_std": _std(distances),
    }


def _pooled_detection(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection counts pooled over cases; voxel and volume figures averaged over cases."""
    counted = ("true_lesions", "detected_lesions", "predicted_lesions", "false_positive_lesions")
    total = {key: sum(r[key] for r in results) for key in counted}
    typed = [r for r in results if r["type_confusion"] is not None]
    confusion = np.sum([r["type_confusion"] for r in typed], axis=0) if typed else np.zeros((4, 4), dtype=np.int64)
    assessed = int(np.sum(confusion))
    return {
        **total,
        "true_positive_detection_rate": _ratio(total["detected_lesions"], total["true_lesions"]),
        "false_positive_detection_rate": _ratio(total["false_positive_lesions"], total["predicted_lesions"]),
        "voxel_precision_mean": _mean([r["voxel_precision"] for r in results if r["gt_volume_mm3"] > 0]),
        "voxel_recall_mean": _mean([r["voxel_recall"] for r in results]),
        "relative_volume_difference_mean": _mean([r["relative_volume_difference"] for r in results]),
        "absolute_volume_difference_mean": _mean([r["absolute_volume_difference"] for r in results]),
        "type_confusion": np.asarray(confusion, dtype=np.int64).tolist(),
        "type_confusion_axes": {"rows": "true type", "columns": "predicted type", "order": list(TYPE_KEYS)},
        "types_correct": int(np.trace(confusion)),
        "types_assessed": assessed,
        "type_accuracy": _ratio(int(np.trace(confusion)), assessed),
    }
