"""The same-result check of issue 19 (`batseg.same_result`, `scripts/check_same_result.py`).

The bar: identical labels, or Dice >= 0.99 per class with every lesion of the reference kept.
Hand-made label maps pin each rule, including the one Dice alone would miss (a small lesion
lost beside a large one); the script then runs on a bundled sample with the shipped model,
PyTorch against ONNX Runtime on the same tiles, which must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batseg.same_result import MIN_DICE, compare_labels, summarise

SPACING = (1.0, 1.0, 1.0)
ROOT = Path(__file__).resolve().parents[1]


def _reference() -> np.ndarray:
    labels = np.zeros((30, 40, 40), dtype=np.uint8)
    labels[2:22, 2:22, 2:22] = 2  # an 8000 mm3 ependymoma
    labels[25:28, 30:33, 30:33] = 2  # a 27 mm3 nodule of the same type, far from it
    return labels


def test_identical_maps_are_the_same_result() -> None:
    agreement = compare_labels(_reference(), _reference(), SPACING)
    assert agreement.identical and agreement.same_result
    assert agreement.dice == {"ependymoma": 1.0}
    assert (agreement.kept_lesions, agreement.reference_lesions, agreement.same_type_lesions) == (2, 2, 2)


def test_a_few_border_voxels_are_within_the_tolerance() -> None:
    candidate = _reference()
    candidate[21, 2:12, 2:12] = 0  # 100 of 8027 voxels lost at the border
    agreement = compare_labels(_reference(), candidate, SPACING)
    assert not agreement.identical and agreement.differing_voxels == 100
    assert agreement.dice["ependymoma"] >= MIN_DICE and agreement.same_result


def test_a_small_lesion_lost_fails_although_the_dice_is_high() -> None:
    candidate = _reference()
    candidate[25:28, 30:33, 30:33] = 0
    agreement = compare_labels(_reference(), candidate, SPACING)
    assert agreement.dice["ependymoma"] > MIN_DICE  # Dice alone would pass it
    assert (agreement.kept_lesions, agreement.reference_lesions) == (1, 2)
    assert not agreement.every_lesion_kept and not agreement.same_result


def test_a_lesion_of_another_type_fails_on_both_classes() -> None:
    candidate = _reference()
    candidate[candidate == 2] = 3
    agreement = compare_labels(_reference(), candidate, SPACING)
    assert agreement.dice == {"ependymoma": 0.0, "astrocytoma": 0.0}
    assert agreement.every_lesion_kept and agreement.same_type_lesions == 0 and not agreement.same_result


def test_the_summary_takes_the_lowest_dice_and_pools_lesions() -> None:
    lost = _reference()
    lost[25:28, 30:33, 30:33] = 0
    summary = summarise([compare_labels(_reference(), _reference(), SPACING), compare_labels(_reference(), lost, SPACING)])
    assert summary["cases"] == 2 and summary["identical"] == 1 and summary["same_result"] == 1
    assert (summary["kept_lesions"], summary["reference_lesions"]) == (3, 4)
    assert summary["lowest_dice"]["ependymoma"] == pytest.approx(2 * 8000 / (8027 + 8000))


def test_the_script_finds_onnx_runtime_gives_torchs_labels_with_the_shipped_model(tmp_path: Path) -> None:
    from batseg.models import resolve_model
    from batseg.phantoms.samples import sample_path

    images = tmp_path / "images"
    images.mkdir()
    (images / "ependymoma.nii.gz").symlink_to(sample_path("BATsegPhantomEpendymoma", "image"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_same_result.py"), "--model",
         str(resolve_model(None)),
         "--images", str(images), "--out", str(tmp_path / "out"), "--paths", "reference,engine",
         "--threads", "2", "--json", str(tmp_path / "same.json")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "same.json").read_text())
    (row,) = result["rows"]
    assert row["path"] == "engine" and row["reference_lesions"] >= 1  # the sample's tumour was found
    assert row["same_result"], row
    assert row["max_probability_difference"] < 1e-3  # ONNX Runtime and PyTorch agree to float precision
    assert "engine: same result on 1/1 cases" in done.stdout
