"""Smoke test of the shipped model on the bundled sample phantoms (issue: shipped model).

The model file under BATsegSlicer/Resources/Models is the product's default; on each sample
case (one per tumour type, synthetic) it must find the tumour (>= 6 mm3 overlap, Lemay's
detection rule) and report the right overall type, through the same `batseg predict` the
README's demo runs. On the real healthy scans of ../shared/data/real-spine-mri, resliced to a
clinical sagittal grid as the model card does, and on a healthy T2-weighted phantom (a wrong
series loaded by mistake) it must report no tumour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main
from batseg.labels import class_by_value
from batseg.model_file import verify
from batseg.models import default_model_path
from batseg.phantoms import generate_case
from batseg.phantoms.samples import sample_cases, sample_path
from inference_helpers import REAL_DATA

DETECTION_MM3 = 6.0


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """`batseg predict` on the four sample images, once for the module."""
    root = tmp_path_factory.mktemp("shipped")
    assert main(["sample", "-o", str(root / "input")]) == 0
    status = main(["predict", "-i", str(root / "input" / "images"), "-o", str(root / "pred"),
                   "--device", "cpu", "--progress", "quiet"])
    assert status == 0
    return root / "pred"


def test_outputs_are_on_the_sample_grids(predictions) -> None:
    """Whatever the model finds, the pipeline writes a label map on each input's exact grid."""
    for case in sample_cases():
        predicted = sitk.ReadImage(str(predictions / f"{case['name']}.nii.gz"))
        image = sitk.ReadImage(str(sample_path(case["name"], "image")))
        assert predicted.GetSize() == image.GetSize() and predicted.GetSpacing() == image.GetSpacing()
        # Read back from NIfTI: the header stores the direction as float32 sform + quaternion,
        # so a rewritten header may differ in the 13th digit (exactness in memory is tested in
        # test_inference_geometry.py).
        np.testing.assert_allclose(predicted.GetOrigin(), image.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(predicted.GetDirection(), image.GetDirection(), atol=1e-6)
        assert (predictions / f"{case['name']}.report.json").is_file()


def test_shipped_model_is_verified_and_says_synthetic() -> None:
    manifest = verify(default_model_path())
    assert "synthetic" in manifest["disclaimer"] and "not for clinical use" in manifest["disclaimer"]
    assert default_model_path().stat().st_size <= 30 * 1024 * 1024


# Shipped model 0.10.0, run as `batseg predict` runs by default (the cascade crop around the cord
# the locator finds), finds all four sample tumours and types three cases right: on the meningioma
# false astrocytomas in the cord outweigh the meningioma it paints, so the case is called
# astrocytoma (0.8.0 called it astrocytoma too; 0.9.0 typed all four right). A model that misses
# one must say so in the README's status; its case is then a strict xfail here naming the model,
# so a model that gets it right again fails the test until the mark goes.
KNOWN_MISSES: dict[str, str] = {
    "BATsegPhantomMeningioma": "0.10.0 calls the meningioma sample astrocytoma (false astrocytomas; README status)"}


def known_misses(values: list[Any], misses: dict[str, str], name: Callable[[Any], str] = str) -> list[Any]:
    """`values` as pytest params named `name(value)`, those named in `misses` a strict xfail with its reason."""
    return [pytest.param(v, id=name(v), marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=misses[name(v)])]
                         if name(v) in misses else []) for v in values]


CASES = known_misses(sample_cases(), KNOWN_MISSES, name=lambda case: case["name"])


@pytest.mark.parametrize("case", CASES)
def test_finds_the_tumour_with_its_type(case: dict, predictions) -> None:
    predicted = sitk.ReadImage(str(predictions / f"{case['name']}.nii.gz"))
    truth = sitk.ReadImage(str(sample_path(case["name"], "label")))
    voxel_mm3 = float(np.prod(truth.GetSpacing()))
    overlap = np.logical_and(sitk.GetArrayFromImage(predicted) > 0, sitk.GetArrayFromImage(truth) > 0).sum()
    assert overlap * voxel_mm3 >= DETECTION_MM3, f"tumour missed ({overlap * voxel_mm3:.1f} mm3 overlap)"
    report = json.loads((predictions / f"{case['name']}.report.json").read_text())
    assert report["overall_type_key"] == class_by_value(case["tumour_type"]).key


@pytest.fixture(scope="module")
def healthy_predictions(tmp_path_factory) -> Path:
    """`batseg predict` on the real healthy scans (resliced as the model card does) and a T2 phantom."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"the real healthy scans are not beside the repository ({REAL_DATA})")
    # The reslicing script reads ../shared beside the repository; a clone without it skips these
    # tests with the reason (BATSEG_TEST_SHARED=missing runs the suite as such a clone does).
    for folder in (REAL_DATA, Path(__file__).resolve().parents[2] / "shared" / "data" / "real-spine-mri"):
        if not folder.is_dir():
            pytest.skip(f"real scans missing: {folder} (a clone without ../shared)")
    root = tmp_path_factory.mktemp("healthy")
    script = Path(__file__).resolve().parents[1] / "scripts" / "reslice_real_scans.py"
    subprocess.run([sys.executable, str(script), "--out", str(root / "real")], check=True, capture_output=True)
    images = root / "real" / "images"
    sitk.WriteImage(generate_case(8, healthy=True, contrast="t2", region="thoracic").image, str(images / "t2_phantom.nii.gz"))
    assert main(["predict", "-i", str(images), "-o", str(root / "pred"), "--device", "cpu", "--progress", "quiet"]) == 0
    return root / "pred"


# 0.10.0 reports no lesion on these resliced real scans nor on the healthy T2 phantom, except a
# lesion on the T2 scan errsm_11 (with the image-based T2 warning; 0.9.0 and 0.7.0 had one there
# too, 0.8.0 none) and a 0.74 cm3 "meningioma" on the real T1 crop sct_t1w, unwarned (0.9.0 had
# none on this grid; on the card's grid 0.38 cm3, 0.10.0 2.3 cm3): strict xfails naming the
# model, as KNOWN_MISSES. Its card lists the scans as distributed and on a second grid, where the
# issue's targets are not all met.
HEALTHY_MISSES = {"errsm_11_t2": "0.10.0 reports a lesion on the resliced T2 scan errsm_11 (warned as T2; its card)",
                  "sct_t1w": "0.10.0 reports a 0.74 cm3 lesion on the resliced real T1 crop (its card)"}
HEALTHY = known_misses(["sct_t1w", "sct_t2", "errsm_11_t2", "errsm_18_t2", "t2_phantom"], HEALTHY_MISSES)


@pytest.mark.parametrize("scan", HEALTHY)
def test_reports_no_tumour_on_healthy_scans(scan: str, healthy_predictions: Path) -> None:
    report = json.loads((healthy_predictions / f"{scan}.report.json").read_text())
    found = [(les["type_key"], round(les["volume_cm3"], 2)) for les in report["lesions"]]
    assert not found, found
