"""The AI's original output survives Slicer's ordinary Save dialog and a reload (issue 14, item 5).

`save_like_the_save_dialog` does, on the headless scene, what qSlicerSaveDataDialog does with its
defaults (Slicer's Base/QTGUI/qSlicerSaveDataDialog.cxx: populateNode, nodeFileInfo): it lists
every storable node that is not hidden from editors and is saved with the scene, gives each
its default storage node and a file named after the node in the chosen folder, writes those
modified since they were read (checked by default), then writes the scene file as Slicer 5.10
and 5.11 do. (Slicer 5.12 added a rescue to vtkMRMLScene::Commit: the data of hidden nodes goes
to a "<scene>_Private" folder. slicer-core here has it, so the scene file is written from the
scene's XML string, which is Commit without that rescue: the oldest supported Slicer is 5.10.)
A run of the Logic (stand-in engine), a reviewer's correction, that save, a reload into a
cleared scene, and an export must give aiTr/ and the editing-effort record, as before the save.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import slicer

from BATsegSlicerLib import export
from BATsegSlicerLib import logic as logic_module
from BATsegSlicerLib.ai_output import AI_OUTPUT_OF, AI_OUTPUT_REFERENCE, recall_ai_output
from BATsegSlicerLib.commands import PredictOptions
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.logic import BATsegLogic
from slicer_test_support import fake_interpreter



def save_like_the_save_dialog(scene, folder: str) -> list[str]:
    """Save the scene as the Save dialog does with its defaults; returns the names of the nodes written."""
    written = []
    for node in list(scene.GetNodesByClass("vtkMRMLStorableNode")):
        if node.GetHideFromEditors() or not node.GetSaveWithScene():
            continue  # not listed by the dialog ("internal node")
        if node.GetStorageNode() is None and not node.AddDefaultStorageNode():
            continue
        storage = node.GetStorageNode()
        if storage is None or not node.GetModifiedSinceRead():
            continue  # stored in the scene file itself, or unchecked (unmodified: keeps its file)
        safe_name = re.sub(r'[\\/:*?"<>|]', "_", node.GetName())
        storage.SetFileName(os.path.join(folder, f"{safe_name}.{storage.GetDefaultWriteFileExtension()}"))
        assert storage.WriteData(node), node.GetName()
        written.append(node.GetName())
    scene.SetRootDirectory(folder)
    scene.SetURL(os.path.join(folder, "scene.mrml"))
    scene.SetSaveToXMLString(1)  # Commit as in Slicer 5.10/5.11: no "<scene>_Private" rescue
    try:
        assert scene.Commit()
        xml = scene.GetSceneXMLString()
    finally:
        scene.SetSaveToXMLString(0)
    Path(folder, "scene.mrml").write_text(xml, encoding="utf-8")
    return written


def reload(scene, folder: str) -> None:
    """Close the scene and load the saved one (File > Load scene)."""
    scene.Clear(1)
    scene.SetURL(os.path.join(folder, "scene.mrml"))
    assert scene.Import()


def _segment_with_the_logic(tmp_path, monkeypatch, volume):
    wrapper = fake_interpreter(tmp_path)
    monkeypatch.setattr(logic_module, "read_manifest",
                        lambda path: {"name": "fake", "version": "1.0", "weights_sha256": "ab" * 32})
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    logic = BATsegLogic(userModelsDir=str(tmp_path / "models"), python=wrapper)
    job = logic.process(volume, "model.batseg", PredictOptions(), timeout=120)
    assert job.state is JobState.SUCCEEDED, job.full_log()
    return job.result


def _correct(segmentation, volume) -> None:
    """The reviewer grows the ependymoma by one slice (100 voxels)."""
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("Ependymoma")
    voxels = (slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, volume) > 0).astype(np.uint8)
    voxels[20:21, 12:22, 14:24] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(voxels, segmentation, segment_id, volume)


def test_ai_output_survives_the_save_dialog_and_a_reload(mrml, volume, tmp_path, monkeypatch):
    result = _segment_with_the_logic(tmp_path, monkeypatch, volume)
    ai_node = result.segmentation.GetNodeReference(AI_OUTPUT_REFERENCE)
    ai_labels = recall_ai_output(result.segmentation).labels
    assert ai_node is not None and ai_labels is not None and int((ai_labels == 2).sum()) == 1000
    # An ordinary node: listed by the Save dialog, tagged, never offered as the input volume.
    assert not ai_node.GetHideFromEditors() and ai_node.GetSaveWithScene()
    assert ai_node.IsA("vtkMRMLLabelMapVolumeNode")  # the input selector shows no label maps
    assert ai_node.GetAttribute(AI_OUTPUT_OF) == result.segmentation.GetID()
    _correct(result.segmentation, volume)

    saved = tmp_path / "saved scene"
    saved.mkdir()
    written = save_like_the_save_dialog(mrml.scene, str(saved))
    assert ai_node.GetName() in written and result.segmentation.GetName() in written
    assert not list(saved.glob("*_Private"))  # nothing relied on Slicer 5.12's rescue of hidden nodes
    reload(mrml.scene, str(saved))

    segmentation = mrml.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    reloaded_volume = mrml.scene.GetFirstNodeByName(volume.GetName())
    assert segmentation is not None and reloaded_volume is not None
    reloaded = recall_ai_output(segmentation)
    assert reloaded.labels is not None and np.array_equal(reloaded.labels, ai_labels)
    assert reloaded.model == {"name": "fake", "version": "1.0", "title": "", "weights_sha256": "ab" * 32}

    case = export.export_case(segmentation, reloaded_volume, str(tmp_path / "export"), reviewer="Dr Test")
    assert os.path.isfile(case.files["ai_output"])
    provenance = json.loads(Path(case.files["provenance"]).read_text())
    editing = provenance["editing"]
    assert editing is not None and editing["changed_voxels"] == 100
    assert editing["voxels_added"]["ependymoma"] == 100 and sum(editing["voxels_removed"].values()) == 0


def test_a_node_hidden_from_editors_is_lost_by_the_save_dialog(mrml, volume, tmp_path):
    """Why the AI output is not hidden: the dialog does not write hidden nodes (the old behaviour)."""
    hidden = mrml.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "hidden archive")
    slicer.util.updateVolumeFromArray(hidden, np.ones((2, 3, 4), np.uint8))
    hidden.SetHideFromEditors(True)
    written = save_like_the_save_dialog(mrml.scene, str(tmp_path))
    assert "hidden archive" not in written
    reload(mrml.scene, str(tmp_path))
    node = mrml.scene.GetFirstNodeByName("hidden archive")
    assert node is None or node.GetImageData() is None  # the voxels are gone
    assert not list(tmp_path.glob("*_Private"))
