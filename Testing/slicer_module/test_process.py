"""The child-process runner and the Logic's run path, with a stand-in engine (fake_engine.py).

Checks: BATSEG events are parsed (stages with timings, progress, log, result, warnings); cancelling
mid-run kills the whole process tree (child and grandchild) and leaves the scene and the disk
as they were; exit status 2 gives the engine's one-line error, a crash its status and last
stderr line, both with the full log; a successful run loads the outputs into the scene (four
segments, lesion table, probability overlay) and refuses outputs that are not on the input grid;
its result carries the run's warnings once each (not the disclaimer the panel always shows) and
the results line the panel shows, which names the minimum volume applied when nothing is found
(and the model's minimum enhancement only when the engine had a cord to apply it against).
Fine-tuning adds the new model, passes the original training data folder on to the engine and
refuses, before starting, one that does not exist or holds no imagesTr/.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import slicer

from batseg.errors import BATsegError
from BATsegSlicerLib import logic as logic_module
from BATsegSlicerLib.commands import PredictOptions, child_environment
from BATsegSlicerLib.jobs import Job, JobState
from BATsegSlicerLib.logic import BATsegLogic
from BATsegSlicerLib.process import ChildProcess

from slicer_test_support import fake_interpreter, make_model_file, processes_alive

FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")


def _fake_job(mode: str, **callbacks) -> Job:
    env = child_environment(dict(os.environ))
    env["BATSEG_FAKE_MODE"] = mode
    return Job("fake", ChildProcess([sys.executable, str(FAKE_ENGINE)], env=env), **callbacks).start()


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    """An executable that stands in for the interpreter: it runs fake_engine.py with its args."""
    wrapper = fake_interpreter(tmp_path)
    # Model validation is tested in test_models.py; here any path stands for a valid model.
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {"name": "fake", "version": "0"})
    return wrapper


def test_events_are_parsed():
    seen = []
    job = _fake_job("events", on_event=lambda event: seen.append(event["event"]))
    assert job.wait(timeout=60) is JobState.SUCCEEDED
    assert job.timings == {"load": 0.25}
    assert job.progress == ("predict", 3, 3)
    assert job.result_event["outputs"] == {"labels": "x.nii.gz"}
    assert "a plain log line" in job.log and "hello from the engine" in job.log
    assert "load: 0.25 s" in job.log
    # stdout and stderr are read on two threads: their relative order is not defined.
    assert sorted(job.warnings) == ["fine-tuning writes its warnings in capitals",
                                    "outside json mode a warning is a stderr line"]
    assert seen.count("progress") == 3 and seen.count("stage") == 2 and "text" in seen
    assert job.total_seconds is not None and job.total_seconds > 0


def test_user_error_gives_the_one_line_message_and_the_log():
    job = _fake_job("usererror")
    assert job.wait(timeout=60) is JobState.FAILED
    assert job.returncode == 2
    assert job.error == "input.nii.gz is 2-D: pass a 3-D volume"
    assert "checking the input" in job.full_log()


def test_crash_reports_status_and_last_stderr_line():
    job = _fake_job("crash")
    assert job.wait(timeout=60) is JobState.FAILED
    assert "exit status 1" in job.error and "RuntimeError: boom" in job.error
    assert "Traceback (most recent call last):" in job.full_log()


def test_cancel_kills_the_process_tree_and_leaves_the_scene_unchanged(mrml, volume, fake_python, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "sleep")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    nodes_before = mrml.scene.GetNumberOfNodes()
    job = logic.startSegmentation(volume, "model.batseg", PredictOptions())
    workdir = job.process.cwd
    grandchild = None
    deadline = time.monotonic() + 30
    while grandchild is None or job.progress is None:
        assert time.monotonic() < deadline, job.full_log()
        job.poll()
        grandchild = next((int(line.split()[1]) for line in job.log if line.startswith("grandchild ")), None)
        time.sleep(0.05)
    child = job.process.pid
    assert processes_alive([child, grandchild]) == [child, grandchild]
    job.cancel()
    assert job.state is JobState.CANCELLED
    deadline = time.monotonic() + 10
    while processes_alive([child, grandchild]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_alive([child, grandchild]) == []
    assert mrml.scene.GetNumberOfNodes() == nodes_before
    assert not os.path.exists(workdir)


def _put_in_study(volume) -> int:
    """Patient > study > volume items, as loading from DICOM creates them; returns the study item."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume.GetScene())
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient")
    study = hierarchy.CreateStudyItem(patient, "Study")
    hierarchy.CreateItem(study, volume)
    return study


def _study_of(volume) -> int:
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume.GetScene())
    return hierarchy.GetItemParent(hierarchy.GetItemByDataNode(volume))


def test_successful_run_loads_segments_table_and_probabilities(mrml, volume, fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    study = _put_in_study(volume)
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    job = logic.process(volume, "model.batseg", PredictOptions(save_probabilities=True), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    result = job.result
    segmentation = result.segmentation.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 4
    ependymoma = segmentation.GetSegmentIdBySegmentName("Ependymoma")
    voxels = slicer.util.arrayFromSegmentBinaryLabelmap(result.segmentation, ependymoma, volume)
    assert int(voxels.sum()) == 1000 and voxels[10:20, 12:22, 14:24].all()
    table = result.table.GetTable()
    assert table.GetNumberOfRows() == 1
    assert table.GetValueByName(0, "Type").ToString() == "Ependymoma"
    assert table.GetValueByName(0, "Type probability").ToString() == "80 %"
    assert table.GetValueByName(0, "Tumour probability").ToString() == "93 %"
    assert table.GetValueByName(0, "Enhancement").ToString() == "1.80x"
    assert [lesion.centroid_ras for lesion in result.lesions] == [(1.0, 2.0, 3.0)]
    probability = slicer.util.arrayFromVolume(result.probability)
    assert probability.dtype == np.float32
    assert np.isclose(probability[15, 15, 15], 0.95) and np.isclose(probability[0, 0, 0], 0.05)
    assert result.segmentation.GetAttribute("BATseg.Model.name") == "fake"
    # Placed under the input's study in the subject hierarchy (set up as DICOM loading does).
    assert _study_of(volume) == study and study != 0
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    for node in (result.segmentation, result.table, result.probability):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study, node.GetName()


def test_result_carries_each_warning_once_without_the_disclaimer(mrml, volume, fake_python, tmp_path,
                                                                 monkeypatch):
    from batseg.model_file import DISCLAIMER
    from fake_engine import GPU_WARNING, ORIENTATION_WARNING

    monkeypatch.setenv("BATSEG_FAKE_MODE", "warnings")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    # Logged as "input: ..." and repeated in the result event: once, without the temporary stem.
    assert job.result.warnings == job.warnings == [GPU_WARNING, ORIENTATION_WARNING]
    assert f"warning: {DISCLAIMER}" in job.log  # the log keeps everything
    assert job.result.overall_type_name == "Ependymoma"
    assert job.result.summary == ("1 lesion(s). Overall type (largest tumour volume): Ependymoma. "
                                  "Click a row to centre the views on it.")


def test_empty_result_names_the_minimum_volume_applied(mrml, volume, fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "empty")
    monkeypatch.setattr(logic_module, "read_manifest",
                        lambda path: {"name": "fake", "postprocessing": {"min_volume_mm3": 1000.0}})
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    result = job.result
    assert result.lesions == [] and result.overall_type_name == "" and result.warnings == []
    assert result.min_volume_mm3 == 1000.0
    assert result.summary == ("The model reported no lesion of at least 1000 mm3. "
                              "This model can miss lesions: review the image.")
    # Without postprocessing no lesion is removed, so no minimum volume is claimed.
    job = logic.process(volume, "model.batseg", PredictOptions(postprocess=False), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert job.result.min_volume_mm3 is None
    assert job.result.summary.startswith("The model reported no lesion. ")


def test_empty_result_names_the_minimum_enhancement_only_when_applied(mrml, volume, fake_python, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "empty")
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {
        "name": "fake", "postprocessing": {"min_volume_mm3": 200.0, "min_tumour_probability": 0.8,
                                           "min_enhancement": 1.2}})
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert job.result.min_enhancement == 1.2
    assert job.result.summary == (
        "The model reported no lesion of at least 200 mm3 with a mean tumour probability of at least 0.8 and a "
        "median signal of at least 1.2 times the spinal cord's. This model can miss lesions, non-enhancing ones "
        "among them: review the image.")
    # No cord to compare with: the engine judged nothing by enhancement, so it is not claimed.
    monkeypatch.setenv("BATSEG_FAKE_NO_CORD", "1")
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert job.result.min_enhancement == 0.0
    assert job.result.summary == ("The model reported no lesion of at least 200 mm3 with a mean tumour probability of "
                                  "at least 0.8. This model can miss lesions: review the image.")
    job = logic.process(volume, "model.batseg", PredictOptions(postprocess=False), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert job.result.min_enhancement == 0.0


def test_output_on_another_grid_is_refused_and_nothing_is_added(mrml, volume, fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "wronggrid")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    nodes_before = mrml.scene.GetNumberOfNodes()
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.FAILED
    assert "not on the input volume's grid" in job.error
    assert mrml.scene.GetNumberOfNodes() == nodes_before


def test_jump_to_lesion_centres_the_slice_views(mrml, volume, fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    slice_node = mrml.scene.AddNewNodeByClass("vtkMRMLSliceNode")
    slice_node.SetLayoutName("Red")
    slice_node.SetOrientationToAxial()
    point = logic.jumpToLesion(job.result.lesions[0], volume)
    assert point == (1.0, 2.0, 3.0)
    slice_to_ras = slice_node.GetSliceToRAS()
    assert [slice_to_ras.GetElement(row, 3) for row in range(3)] == pytest.approx([1.0, 2.0, 3.0])


def test_fine_tuning_adds_the_new_model_and_refuses_an_empty_export(mrml, volume, fake_python, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {"name": "base model"})
    base = make_model_file(tmp_path / "base.batseg", name="base", weights=b"base weights")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    with pytest.raises(BATsegError, match="holds no exported case"):
        logic.startFineTuning(str(base), str(tmp_path / "empty"), epochs=1)
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "dataset.json").write_text('{"numTraining": 1}')
    monkeypatch.setenv("BATSEG_FAKE_MODE", "train")
    job = logic.startFineTuning(str(base), str(export_dir), epochs=2, device="cpu")
    assert job.wait(timeout=60) is JobState.SUCCEEDED, job.full_log()
    entry = job.result
    assert not entry.shipped and os.path.dirname(entry.path) == str(tmp_path / "models")
    assert os.path.basename(entry.path).startswith("base-model-finetuned-")
    assert [e.path for e in logic.models()[0] if not e.shipped] == [entry.path]
    assert job.timings == {"train": 0.01}
    assert not any(line.startswith("replay data:") for line in job.log)  # none given: the engine decides


def test_fine_tuning_passes_the_original_training_data_and_refuses_a_wrong_folder(mrml, fake_python, tmp_path,
                                                                                   monkeypatch):
    base = make_model_file(tmp_path / "base.batseg", name="base", weights=b"base weights")
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "dataset.json").write_text('{"numTraining": 1}')
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_python)
    with pytest.raises(BATsegError, match="does not exist"):
        logic.startFineTuning(str(base), str(export_dir), epochs=1, replayData=str(tmp_path / "missing"))
    original = tmp_path / "Dataset501_Original"
    original.mkdir()
    with pytest.raises(BATsegError, match="holds no imagesTr folder") as refused:
        logic.startFineTuning(str(base), str(export_dir), epochs=1, replayData=str(original))
    assert "\n" not in str(refused.value)  # one line, as the panel's error box shows it
    assert not os.path.exists(tmp_path / "models") or not os.listdir(tmp_path / "models")  # nothing started
    (original / "imagesTr").mkdir()
    monkeypatch.setenv("BATSEG_FAKE_MODE", "train")
    job = logic.startFineTuning(str(base), str(export_dir), epochs=1, device="cpu", replayData=str(original))
    assert job.wait(timeout=60) is JobState.SUCCEEDED, job.full_log()
    assert f"replay data: {original}" in job.log
