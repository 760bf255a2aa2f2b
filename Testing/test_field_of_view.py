"""Out-of-domain geometry (issue 13, item 5): a volume that is not a sagittal 2-D stack, or that
covers too little of the spine, is segmented with a warning in the CLI and the lesion report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.field_of_view import geometry_warnings, si_coverage_mm, slice_plane
from inference_helpers import REAL_DATA, light_model, make_image, run_cli, sagittal_image, smooth_volume

AXIAL_LPS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # slices stacked along the head-foot axis


def test_a_clinical_sagittal_stack_gets_no_warning() -> None:
    image = sagittal_image((12, 160, 120))  # 3.6 mm slices, 80 mm head to foot
    assert slice_plane(image) == "sagittal"
    assert si_coverage_mm(image) == pytest.approx(80.0)
    assert geometry_warnings(image) == []


def test_an_axial_stack_is_named_axial() -> None:
    image = make_image(smooth_volume((30, 64, 64)), spacing=(0.5, 0.5, 3.6), direction=AXIAL_LPS)
    warnings = geometry_warnings(image)
    assert slice_plane(image) == "axial" and any("axial" in w for w in warnings)


def test_a_near_isotropic_volume_and_a_short_slab_are_warned() -> None:
    image = make_image(smooth_volume((16, 140, 130)), spacing=(1.0, 1.0, 1.0), direction=AXIAL_LPS)
    warnings = geometry_warnings(image)
    assert slice_plane(image) is None and si_coverage_mm(image) == pytest.approx(16.0)
    assert len(warnings) == 2
    assert "near-isotropic" in warnings[0] and "covers only 16 mm" in warnings[1]


def test_predict_writes_the_warning_into_the_report(tmp_path: Path) -> None:
    image = make_image(smooth_volume((30, 64, 64)), spacing=(0.5, 0.5, 3.6), direction=AXIAL_LPS)
    sitk.WriteImage(image, str(tmp_path / "axial.nii.gz"))
    result = run_cli("predict", "-i", str(tmp_path / "axial.nii.gz"), "-o", str(tmp_path / "out"),
                     "--model", str(light_model()), "--progress", "quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "axial.report.json").read_text())
    assert any("axial" in w for w in report["warnings"])
    assert "axial" in result.stdout + result.stderr


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real scans missing: {REAL_DATA}")
def test_the_real_axial_slab_is_warned_and_the_real_sagittal_scans_are_not() -> None:
    slab = sitk.ReadImage(str(REAL_DATA / "spine-generic_sub-unf01" / "sub-unf01_T1w.nii.gz"))
    assert any("covers only 39 mm" in w for w in geometry_warnings(slab))  # 16 slices, tilted 9 degrees
    t2 = sitk.ReadImage(str(REAL_DATA / "spinalcordtoolbox_2014" / "errsm_11" / "t2.nii.gz"))
    assert not any("covers only" in w for w in geometry_warnings(t2))
