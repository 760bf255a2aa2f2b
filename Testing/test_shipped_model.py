"""Smoke test of the shipped model on the bundled sample phantoms (issue: shipped model).

The model file under BATsegSlicer/Resources/Models is the product's default; on each sample
case (one per tumour type, synthetic) it must find the tumour (>= 6 mm3 overlap, Lemay's
detection rule) and report the right overall type, through the same `batseg predict` the
README's demo runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main
from batseg.labels import class_by_value
from batseg.model_file import verify
from batseg.models import default_model_path
from batseg.phantoms.samples import sample_cases, sample_path

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


# Shipped model 0.5.0 (see its card) finds all four samples with the right type (0.4.0 typed the
# meningioma as hemangioblastoma and the ependymoma as astrocytoma). A retrained model that misses
# one must say so in its card; mark that case here with a strict xfail naming the model.
CASES = [pytest.param(c, id=c["name"]) for c in sample_cases()]


@pytest.mark.parametrize("case", CASES)
def test_finds_the_tumour_with_its_type(case: dict, predictions) -> None:
    predicted = sitk.ReadImage(str(predictions / f"{case['name']}.nii.gz"))
    truth = sitk.ReadImage(str(sample_path(case["name"], "label")))
    voxel_mm3 = float(np.prod(truth.GetSpacing()))
    overlap = np.logical_and(sitk.GetArrayFromImage(predicted) > 0, sitk.GetArrayFromImage(truth) > 0).sum()
    assert overlap * voxel_mm3 >= DETECTION_MM3, f"tumour missed ({overlap * voxel_mm3:.1f} mm3 overlap)"
    report = json.loads((predictions / f"{case['name']}.report.json").read_text())
    assert report["overall_type_key"] == class_by_value(case["tumour_type"]).key
