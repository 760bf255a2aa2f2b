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
    assert found["scan_t2"]["resliced"] == {"lesions": 0, "volumes_mm3": [], "contrast_warning": False,
                                            "fluid_to_cord_ratio": None, "warnings": []}
