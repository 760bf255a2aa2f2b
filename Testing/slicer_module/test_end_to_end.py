"""End to end: the Logic's Apply path with the real engine and the shipped model, on a sample case.

Runs `python -m batseg predict` in a child process exactly as Slicer does (waitForCompletion)
and checks that the results in the scene agree with the engine's own report.
"""

from __future__ import annotations

import glob
import os
from types import SimpleNamespace

import numpy as np
import pytest
import slicer

from BATsegSlicerLib.commands import MODULE_DIR, PredictOptions
from BATsegSlicerLib.dicom_sidecar import INSTANCE_UIDS_ATTRIBUTE
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.logic import BATsegLogic
from BATsegSlicerLib.sample_data import read_sample_cases

SHIPPED = sorted(glob.glob(os.path.join(MODULE_DIR, "Resources", "Models", "*.batseg")))


@pytest.mark.slow
def test_apply_with_the_shipped_model_on_a_sample_case(mrml, tmp_path):
    assert SHIPPED, "no shipped model in BATsegSlicer/Resources/Models"
    cases = [c for c in read_sample_cases() if os.path.isfile(c.image)]
    assert cases, "no sample case in BATsegSlicer/Resources/SampleData"
    case = cases[0]
    volume = mrml.volumes.AddArchetypeVolume(case.image, case.name, 0)
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"))
    nodes_before = mrml.scene.GetNumberOfNodes()
    job = logic.process(volume, SHIPPED[0], PredictOptions(device="cpu", save_probabilities=True), timeout=540)
    assert job.state is JobState.SUCCEEDED, job.error + "\n" + job.full_log()
    assert mrml.scene.GetNumberOfNodes() > nodes_before
    assert job.timings, "the engine reported no stage timings"
    result = job.result
    assert result.segmentation.GetSegmentation().GetNumberOfSegments() == 4
    assert result.table.GetTable().GetNumberOfRows() == len(result.report["lesions"])
    # Voxels in the scene agree with the engine's report (total tumour volume).
    voxel_mm3 = float(np.prod(volume.GetSpacing()))
    total = 0
    for index in range(4):
        segment_id = result.segmentation.GetSegmentation().GetNthSegmentID(index)
        total += int(slicer.util.arrayFromSegmentBinaryLabelmap(result.segmentation, segment_id, volume).sum())
    assert total * voxel_mm3 / 1000.0 == pytest.approx(result.report["total_volume_cm3"], rel=1e-6, abs=1e-9)
    probability = slicer.util.arrayFromVolume(result.probability)
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    # Detection accuracy is the engine's smoke test (Testing/test_shipped_model.py) and the
    # model card's; here only the lesion table's agreement with the report is checked.
    assert len(result.lesions) == len(result.report["lesions"])
    # The engine logs the model's disclaimer as a warning on every run; the panel shows it anyway.
    assert not any("clinical use" in warning for warning in result.warnings), result.warnings


@pytest.mark.slow
def test_apply_on_a_real_healthy_scan_keeps_its_geometry(mrml, t2_volume, tmp_path, monkeypatch):
    """The shipped model through the child process on a real scan (PSR, 1 mm, no tumour):
    the segmentation shares the input's geometry and the scene gains only the results. The scan
    is a T2: presented as loaded from DICOM (a stand-in database with T2 times), the run warns."""
    assert SHIPPED, "no shipped model in BATsegSlicer/Resources/Models"
    t2_volume.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "1.2.3.4 1.2.3.5")
    tags = {"0018,0081": "102", "0018,0080": "2500", "0008,0060": "MR", "0008,103E": "T2 SAG"}
    monkeypatch.setattr(slicer, "dicomDatabase", SimpleNamespace(instanceValue=lambda uid, tag: tags.get(tag, "")),
                        raising=False)
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"))
    job = logic.process(t2_volume, SHIPPED[0], PredictOptions(device="cpu"), timeout=540)
    assert job.state is JobState.SUCCEEDED, job.error + "\n" + job.full_log()
    assert any("looks T2-weighted" in w and "EchoTime 102 ms" in w for w in job.result.warnings), job.result.warnings
    assert job.result.report["acquisition"]["weighting"] == "T2-weighted"
    segmentation = job.result.segmentation
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 4
    reference = segmentation.GetSegmentation().GetConversionParameter("Reference image geometry")
    import vtk

    matrix = vtk.vtkMatrix4x4()
    t2_volume.GetIJKToRASMatrix(matrix)
    values = [float(v) for v in reference.split(";")[:16]]
    expected = [matrix.GetElement(r, c) for r in range(4) for c in range(4)]
    assert np.allclose(values, expected, atol=1e-6)
    assert [int(v) for v in reference.split(";")[16:22:2]] == [0, 0, 0]
    assert [int(v) + 1 for v in reference.split(";")[17:22:2]] == list(t2_volume.GetImageData().GetDimensions())
