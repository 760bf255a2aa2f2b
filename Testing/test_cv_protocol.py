"""`batseg train --fold K / cv` reports the paper's protocol on the held-out cases (issue 16, item 7):
batseg.metrics (Dice, HD95 with the 450 mm rule, detection) per fold, and mean +- sd over folds."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batseg.training.fold_metrics import cv_table, evaluate_fold, format_cv_table, read_fold_summary  # noqa: E402


def write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_a_folds_held_out_predictions_are_scored_with_the_papers_metrics(tmp_path: Path) -> None:
    truth = np.zeros((6, 30, 30), np.uint8)
    truth[2:4, 5:15, 5:15] = 2
    found = truth.copy()  # perfect
    missed = np.zeros_like(truth)  # the tumour missed: Dice 0, HD95 450 mm, not detected
    fold, gt = tmp_path / "fold_0", tmp_path / "gt_segmentations"
    for name, prediction in (("a", found), ("b", missed)):
        write(truth, gt / f"{name}.nii.gz")
        write(prediction, fold / "validation" / f"{name}.nii.gz")
    summary = evaluate_fold(fold, gt, ".nii.gz")
    assert summary["n_cases"] == 2
    assert summary["dice_per_class"]["ependymoma"] == pytest.approx(0.5)
    assert summary["hd95_per_class"]["ependymoma"] == pytest.approx(225.0)  # (0 + 450) / 2
    assert summary["detection_rate"] == pytest.approx(0.5) and summary["type_accuracy"] == 1.0
    assert summary["dice_per_class"]["meningioma"] is None  # absent class: not averaged
    assert read_fold_summary(fold) == json.loads(json.dumps(summary))
    assert evaluate_fold(tmp_path / "fold_1", gt, ".nii.gz") is None  # no validation (fold "all")


def test_folds_are_summarised_as_mean_and_sample_sd() -> None:
    folds = [{"mean_dice": d, "mean_hd95": h, "detection_rate": 1.0, "false_positive_detection_rate": None,
              "type_accuracy": 0.5, "patient_sensitivity": 1.0, "dice_per_class": {"astrocytoma": d},
              "hd95_per_class": {"astrocytoma": h}} for d, h in ((0.6, 10.0), (0.8, 30.0))]
    table = cv_table(folds + [None])
    stats = table["mean_sd"]
    assert stats["mean_dice"]["mean"] == pytest.approx(0.7) and stats["mean_dice"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert stats["mean_hd95"] == {"mean": 20.0, "sd": pytest.approx(math.sqrt(200.0)), "folds": 2}
    assert stats["false_positive_detection_rate"]["mean"] is None
    assert stats["dice_per_class"]["astrocytoma"]["mean"] == pytest.approx(0.7)
    assert format_cv_table(table).startswith("Dice 70.0 +- 14.1 %, HD95 20.0 +- 14.1 mm, detection 100.0 +- 0.0 %")


def test_the_cv_summary_carries_the_papers_protocol(tmp_path: Path) -> None:
    from batseg.model_file import network_from_manifest, write_model_file
    from batseg.training.package import write_cv_summary
    from test_model_file import manifest as base_manifest

    net = network_from_manifest(base_manifest())
    paths = []
    for fold, dice in enumerate((0.2, 0.4)):
        m = base_manifest()
        m["metrics"] = {"validation": {"dice_per_class": {"meningioma": dice}, "mean_foreground_dice": dice,
                                       "paper_protocol": {"mean_dice": dice, "mean_hd95": 100.0}}}
        paths.append(write_model_file(tmp_path / f"m{fold}.batseg", net.state_dict(), m))
    summary = write_cv_summary(paths, tmp_path / "cv.json")
    paper = json.loads((tmp_path / "cv.json").read_text())["paper_protocol"]
    assert paper["mean_sd"]["mean_dice"]["mean"] == pytest.approx(0.3) and len(paper["folds"]) == 2
    assert summary["mean_foreground_dice"] == pytest.approx(0.3)  # nnU-Net's figure kept beside it
