"""The paper's evaluation protocol on each cross-validation fold's held-out cases.

nnU-Net's final validation predicts the held-out cases of a fold (`fold_K/validation/CASE.nii.gz`,
on each case's own grid) and summarises them with its own Dice. The paper's tables report, per
tumour type, Dice and HD95 with a missing prediction scored 450 mm, and Lemay et al.'s lesion
detection, as mean +- sd over the five folds. This module scores the same predictions with
`batseg.metrics` (the protocol `batseg evaluate` uses; see its docstring for each decision)
against nnU-Net's copies of the ground truth (`gt_segmentations` of the preprocessed dataset),
writes the fold's figures beside its predictions (`batseg_metrics.json`), and condenses the
folds into mean +- sd (`cv_table`, in `NAME_cv.json` of `batseg train --fold cv`).

Decision: the predictions are nnU-Net's argmax before BATseg's postprocessing (its minimum
lesion volume is tuned afterwards, on validation cases, by `batseg tune-postprocess`), so these
are the network's figures; `batseg evaluate` on postprocessed predictions gives the product's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METRICS_FILE = "batseg_metrics.json"
PROTOCOL = ("batseg.metrics (Dice, HD95 with 450 mm for a missing class, Lemay's detection) on nnU-Net's final "
            "validation predictions of the held-out fold, before BATseg's postprocessing")
# The figures condensed per fold and across folds (fractions in [0, 1]; HD95 in mm).
FIGURES = ("mean_dice", "mean_hd95", "detection_rate", "false_positive_detection_rate", "type_accuracy",
           "patient_sensitivity")


def evaluate_fold(fold_dir: Path, gt_folder: Path, file_ending: str) -> dict[str, Any] | None:
    """Score the fold's validation predictions against `gt_folder`; writes and returns the summary
    (None when the fold has no validation predictions)."""
    import SimpleITK as sitk

    from batseg.metrics import aggregate, evaluate_case

    predictions = sorted((Path(fold_dir) / "validation").glob(f"*{file_ending}"))
    if not predictions:
        return None
    cases = {}
    for prediction in predictions:
        truth = Path(gt_folder) / prediction.name
        pred_image, gt_image = sitk.ReadImage(str(prediction)), sitk.ReadImage(str(truth))
        spacing = tuple(reversed(gt_image.GetSpacing()))  # array (z, y, x) order
        cases[prediction.name[: -len(file_ending)]] = evaluate_case(
            sitk.GetArrayFromImage(pred_image), sitk.GetArrayFromImage(gt_image), spacing)
    summary = fold_summary(aggregate(list(cases.values())))
    record = {"protocol": PROTOCOL, "summary": summary, "cases": cases}
    (Path(fold_dir) / "validation" / METRICS_FILE).write_text(json.dumps(record, indent=2, default=_plain), encoding="utf-8")
    return summary


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fold_summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The paper's figures of one fold from `metrics.aggregate`."""
    detection = figures["detection"]
    return {
        "n_cases": figures["n_cases"],
        "mean_dice": figures["mean_over_classes"]["dice"],
        "mean_hd95": figures["mean_over_classes"]["hd95"],
        "dice_per_class": {k: v["dice_mean"] for k, v in figures["per_class"].items()},
        "hd95_per_class": {k: v["hd95_mean"] for k, v in figures["per_class"].items()},
        "detection_rate": detection["true_positive_detection_rate"],
        "false_positive_detection_rate": detection["false_positive_detection_rate"],
        "type_accuracy": detection["type_accuracy"],
        "patient_sensitivity": figures["patient_sensitivity"],
    }


def read_fold_summary(fold_dir: Path) -> dict[str, Any] | None:
    path = Path(fold_dir) / "validation" / METRICS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["summary"]


def _mean_sd(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation of the defined values (as the paper's +- over folds)."""
    defined = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not defined:
        return {"mean": None, "sd": None, "folds": 0}
    mean = sum(defined) / len(defined)
    sd = math.sqrt(sum((v - mean) ** 2 for v in defined) / (len(defined) - 1)) if len(defined) > 1 else 0.0
    return {"mean": mean, "sd": sd, "folds": len(defined)}


def cv_table(per_fold: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean +- sd over the folds of each figure, overall and per tumour type."""
    folds = [f for f in per_fold if f]
    table: dict[str, Any] = {name: _mean_sd([f.get(name) for f in folds]) for name in FIGURES}
    for per_class in ("dice_per_class", "hd95_per_class"):
        keys = sorted({k for f in folds for k in f.get(per_class, {})})
        table[per_class] = {k: _mean_sd([f[per_class].get(k) for f in folds]) for k in keys}
    return {"folds": per_fold, "mean_sd": table}


def format_cv_table(table: dict[str, Any]) -> str:
    """One line: 'Dice 61.2 +- 3.1 %, HD95 40.2 +- 5.0 mm, detection 90.0 +- 4.0 %, ...'."""
    stats = table["mean_sd"]

    def figure(name: str, label: str, percent: bool = True) -> str:
        entry = stats[name]
        if entry["mean"] is None:
            return f"{label} n/a"
        scale, unit = (100.0, " %") if percent else (1.0, " mm")
        return f"{label} {scale * entry['mean']:.1f} +- {scale * entry['sd']:.1f}{unit}"

    return ", ".join([figure("mean_dice", "Dice"), figure("mean_hd95", "HD95", percent=False),
                      figure("detection_rate", "detection"), figure("false_positive_detection_rate", "false positives"),
                      figure("type_accuracy", "type accuracy")])
