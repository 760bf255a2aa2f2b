"""scripts/evaluate_real_anatomy.py's unaltered-scan figures: lesion counts, volumes and the T2
warning read from `batseg predict`'s reports (the prediction itself is replaced by written reports)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_real_anatomy.py"
spec = importlib.util.spec_from_file_location("evaluate_real_anatomy", SCRIPT)
real = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real)

T2_WARNING = "the fluid around the spinal cord is 1.5 times as bright as the cord, as on a T2-weighted scan"


def test_unaltered_figures_read_counts_volumes_and_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = {"distributed": {"lesion_count": 1, "lesions": [{"volume_cm3": 1.342}], "warnings": [T2_WARNING],
                               "contrast_check": {"fluid_to_cord_ratio": 1.5}},
               "resliced": {"lesion_count": 0, "lesions": [], "warnings": []}}

    def fake_predict(model: Path, images: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "scan_t2.report.json").write_text(json.dumps(reports[images.parent.name]))

    monkeypatch.setattr(real, "_predict", fake_predict)
    found = real.unaltered_figures(Path("model.batseg"), tmp_path / "unaltered", tmp_path / "out")
    assert found["scan_t2"]["distributed"]["volumes_mm3"] == [1342.0]
    assert found["scan_t2"]["distributed"]["contrast_warning"] is True
    assert found["scan_t2"]["distributed"]["fluid_to_cord_ratio"] == 1.5
    assert found["scan_t2"]["distributed"]["contrast_unchecked"] is False
    assert found["scan_t2"]["resliced"] == {"lesions": 0, "volumes_mm3": [], "contrast_warning": False,
                                            "contrast_unchecked": False, "fluid_to_cord_ratio": None,
                                            "warnings": []}


def test_a_scan_whose_contrast_could_not_be_checked_is_not_counted_as_warned_t2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = {"lesion_count": 1, "lesions": [{"volume_cm3": 0.43}], "warnings": [real.CONTRAST_UNCHECKED]}

    def fake_predict(model: Path, images: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "slab_t2w.report.json").write_text(json.dumps(report))

    monkeypatch.setattr(real, "_predict", fake_predict)
    version = real.unaltered_figures(Path("model.batseg"), tmp_path / "unaltered", tmp_path / "out")["slab_t2w"]["resliced"]
    assert version["contrast_warning"] is False and version["contrast_unchecked"] is True
    assert real.contrast_cell(version) == "unchecked"
    assert real.contrast_cell({"contrast_warning": True, "contrast_unchecked": False}) == "yes"
    assert real.contrast_cell({}) == "no"


def _row(background: str, kind: str, volume: float, detected: bool, dice: float) -> dict:
    return {"background": background, "type": kind, "volume_mm3": volume, "detected": detected,
            "typed_right": detected, "false_lesions": 0, "dice": dice}


def test_figures_per_type_within_each_background() -> None:
    rows = [_row("sct_t1w", "astrocytoma", 900.0, False, 0.0), _row("sct_t1w", "astrocytoma", 800.0, True, 0.5),
            _row("sct_t1w", "ependymoma", 300.0, True, 0.7), _row("errsm_24_t2", "astrocytoma", 900.0, True, 0.6)]
    summary = real._summarise(rows)
    astro = summary["by_background"]["sct_t1w"]["per_type"]["astrocytoma"]
    assert astro == {"lesions": 2, "large_lesions": 2, "large_detected": 0.5, "dice": 0.25}
    ependymoma = summary["by_background"]["sct_t1w"]["per_type"]["ependymoma"]
    assert ependymoma["large_lesions"] == 0 and ependymoma["large_detected"] is None  # too small to count
    assert summary["by_background"]["errsm_24_t2"]["per_type"]["meningioma"]["lesions"] == 0
    table = real.per_type_table(summary)
    assert "| sct_t1w | astrocytoma | 50% of 2 | 0.25 |" in table
    assert "| sct_t1w | ependymoma | n/a of 0 | 0.70 |" in table
    assert not any("meningioma" in line for line in table)  # no row for a type a background does not carry
