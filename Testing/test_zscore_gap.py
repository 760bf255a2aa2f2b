"""scripts/zscore_gap.py: the cord's and the lesion's place after nnU-Net's whole-scan z-score,
on a small written data set whose answer is known (the same cord in a wider field of view of air
stands elsewhere)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "zscore_gap.py"
spec = importlib.util.spec_from_file_location("zscore_gap", SCRIPT)
gap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gap)


def _case(air_share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue at 100, a cord at 200 with a lesion at 400, and `air_share` of the columns at 0."""
    image = np.full((4, 40, 100), 100.0, np.float32)
    image[:, :, : int(100 * air_share)] = 0.0
    cord = np.zeros(image.shape, np.uint8)
    cord[:, :, 80:90] = 1
    image[cord > 0] = 200.0
    label = np.zeros(image.shape, np.uint8)
    label[:, 10:14, 82:88] = 3
    image[label > 0] = 400.0
    return image, label, cord


def test_case_figures_are_the_whole_scan_z_score() -> None:
    image, label, cord = _case(0.5)
    z = (image - image.mean()) / image.std()
    figures = gap.case_figures(image, label, cord)
    assert figures["cord"] == pytest.approx(float(z[(cord > 0) & (label == 0)][0]))
    assert figures["lesion"] == pytest.approx(float(z[label > 0][0]))
    assert np.isnan(gap.case_figures(image, label * 0, cord)["lesion"])


def test_figures_per_background_of_a_written_data_set(tmp_path: Path) -> None:
    folder = tmp_path / "Dataset900_Z"
    backgrounds = {}
    for index, air in enumerate((0.0, 0.6)):
        case = f"case{index}"
        for sub, name, array in zip(("imagesTr", "labelsTr", "cordTr"), (f"{case}_0000", case, case), _case(air)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / sub / f"{name}.nii.gz"))
        backgrounds[case] = {"background": "tight" if air == 0 else "wide"}
    (folder / "insertions.json").write_text(json.dumps({"cases": backgrounds}))
    figures = gap.dataset_figures(folder)
    assert figures["tight"]["cases"] == figures["wide"]["cases"] == 1
    for name, air in (("tight", 0.0), ("wide", 0.6)):
        expected = gap.case_figures(*_case(air))
        assert figures[name]["cord"] == pytest.approx(expected["cord"], abs=1e-4)
        assert figures[name]["lesion"] == pytest.approx(expected["lesion"], abs=1e-4)
    assert abs(figures["wide"]["cord"] - figures["tight"]["cord"]) > 0.2


def test_a_folder_without_cord_masks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no cordTr folder"):
        gap.dataset_figures(tmp_path)


def test_n4_removes_a_smooth_multiplicative_bias() -> None:
    """A uniform block under a 1.0-1.6 head-foot gain: N4 must leave it far flatter than it found it."""
    flat = np.full((16, 48, 48), 100.0, np.float32)
    flat[:, :, :6] = 0.0  # some background, as a scan has
    gain = np.linspace(1.0, 1.6, 48, dtype=np.float32)[None, :, None]
    biased = sitk.GetImageFromArray(flat * gain)
    corrected = gap.standardised(biased, n4=True, gamma=None)
    inside = flat > 0

    def spread(values: np.ndarray) -> float:
        return float(values[inside].std() / values[inside].mean())

    assert spread(corrected) < 0.5 * spread(flat * gain)


def test_gamma_works_on_the_unit_range() -> None:
    image = sitk.GetImageFromArray(np.array([[[0.0, 50.0, 100.0]]], np.float32))
    assert gap.standardised(image, n4=False, gamma=2.0).ravel() == pytest.approx([0.0, 0.25, 1.0])
    assert gap.standardised(image, n4=False, gamma=None).ravel() == pytest.approx([0.0, 50.0, 100.0])
