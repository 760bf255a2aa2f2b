"""scripts/lesion_confidence.py: each lesion's peak and mean tumour probability, and what each minimum keeps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lesion_confidence.py"
spec = importlib.util.spec_from_file_location("lesion_confidence", SCRIPT)
confidence = importlib.util.module_from_spec(spec)
spec.loader.exec_module(confidence)


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A true lesion the network is sure of, a false one it doubts, and a speck."""
    labels = np.zeros((10, 20, 20), dtype=np.uint8)
    labels[1:4, 2:7, 2:7] = 2  # 75 mm3, true
    labels[6:9, 12:17, 12:17] = 1  # 75 mm3, false
    labels[0, 18, 18] = 3  # 1 mm3 speck
    truth = np.zeros_like(labels)
    truth[1:4, 2:7, 2:7] = 2
    probabilities = np.zeros((5, *labels.shape), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[0][labels == 2], probabilities[2][labels == 2] = 0.1, 0.9
    probabilities[0][labels == 1], probabilities[1][labels == 1] = 0.4, 0.6
    probabilities[0][6, 12, 12], probabilities[1][6, 12, 12] = 0.01, 0.99  # one sure voxel: a high peak
    return labels, probabilities, truth


def test_lesions_carry_their_peak_mean_and_truth() -> None:
    labels, probabilities, truth = _case()
    rows = confidence.case_lesions(labels, probabilities, truth, (1.0, 1.0, 1.0), min_volume_mm3=10.0)
    assert len(rows) == 2  # the speck is under the volume minimum
    true, false = sorted(rows, key=lambda row: not row["true"])
    assert true["true"] and not false["true"]
    assert abs(true["mean"] - 0.9) < 1e-6 and abs(false["peak"] - 0.99) < 1e-6
    assert 0.6 < false["mean"] < 0.61 and true["volume_mm3"] == 75.0
    # The predictor's layout: the four tumour classes only, no background channel.
    assert confidence.case_lesions(labels, probabilities[1:], truth, (1.0, 1.0, 1.0), 10.0) == rows


def test_the_table_counts_what_each_minimum_keeps() -> None:
    labels, probabilities, truth = _case()
    rows = confidence.case_lesions(labels, probabilities, truth, (1.0, 1.0, 1.0), min_volume_mm3=10.0)
    table = confidence.kept_table(rows).splitlines()
    assert table[2] == "| 0 | 1 | 1 | 1 | 1 |"
    assert "| 0.8 | 1 | 1 | 1 | 0 |" in table  # the mean drops the doubted false lesion, the peak does not
    assert "| 0.95 | 0 | 1 | 0 | 0 |" in table
