"""The panel's decisions (BATsegSlicerLib/panel_state.py) driven through the sequences Slicer runs
(issue 14, items 2 and 3), with the stand-in engine:

- a run started in the module ends while another module is shown: its segmentation is in the
  parameter node and the panel shows its result on return; also when the parameter node was
  removed or the scene cleared meanwhile (a finished run meeting a cleared node);
- `slicer.testing.runUnitTest` clears the scene before each test method with the module never
  entered: Segment is still enabled as soon as a volume is chosen;
- closing the scene cancels a run and drops the result; a result whose segmentation was
  deleted is not shown again;
- the Widget (BATsegSlicer.py, which needs the application) keeps the parameter node on exit and
  reads it only through the state: checked on its source, since the Widget cannot run here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from BATsegSlicerLib import logic as logic_module
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.logic import BATsegLogic
from BATsegSlicerLib.commands import DEVICES
from BATsegSlicerLib.panel_state import DEVICE_LABELS, FINE_TUNE, SEGMENT, PanelState, device_at, device_index
from BATsegSlicerLib.parameter_node import parameter_node
from slicer_test_support import fake_interpreter

WIDGET_SOURCE = Path(__file__).resolve().parents[2] / "BATsegSlicer" / "BATsegSlicer.py"


@pytest.fixture
def logic(tmp_path, monkeypatch):
    """A Logic whose child process is the stand-in engine (any model path stands for a valid model)."""
    wrapper = fake_interpreter(tmp_path)
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {"name": "fake", "version": "0"})
    return BATsegLogic(userModelsDir=str(tmp_path / "models"), python=wrapper)


def _start_run(state: PanelState, logic: BATsegLogic, volume):
    """What the Widget's Segment button does (onApplyButton / startJob)."""
    job = logic.startSegmentation(volume, "model.batseg", state.parameters.predict_options(),
                                  onFinished=state.segmentation_finished)
    state.start(SEGMENT, job, volume)
    return job


def test_run_ending_while_another_module_is_shown_is_shown_on_return(mrml, volume, logic, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    state = PanelState(logic.getParameterNode)
    assert state.enter() is None
    state.parameters.input_volume = volume
    assert state.buttons(has_model=True).apply_enabled
    job = _start_run(state, logic, volume)
    buttons = state.buttons(has_model=True)
    assert (buttons.apply_text, buttons.apply_enabled, buttons.fine_tune_enabled) == ("Cancel", True, False)
    state.exit()  # the user opens another module; the run goes on
    assert job.wait(timeout=120) is JobState.SUCCEEDED, job.full_log()
    assert state.parameters.segmentation is job.result.segmentation
    shown = state.enter()  # back in the module: the panel shows the result
    assert shown is not None and shown.result is job.result and shown.volume is volume
    assert shown.result.lesions and shown.result.summary
    buttons = state.buttons(has_model=True)
    assert (buttons.apply_text, buttons.apply_enabled, buttons.review_enabled) == ("Segment", True, True)


def test_finished_run_meets_a_cleared_parameter_node(mrml, volume, logic, monkeypatch):
    """The parameter node is removed while the module is hidden and the run goes on (what the
    Widget's old exit() amounted to): the run still records its result in the scene's node."""
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    state = PanelState(logic.getParameterNode)
    state.enter()
    state.parameters.input_volume = volume
    job = _start_run(state, logic, volume)
    state.exit()
    mrml.scene.RemoveNode(parameter_node(mrml.scene))
    assert job.wait(timeout=120) is JobState.SUCCEEDED, job.full_log()
    node = mrml.scene.GetSingletonNode("BATsegSlicer", "vtkMRMLScriptedModuleNode")
    assert node is not None and state.parameters.node is node
    assert state.parameters.segmentation is job.result.segmentation
    assert state.enter().result is job.result


def test_cleared_scene_with_the_module_never_entered_keeps_segment_usable(mrml, logic):
    """runUnitTest: every test method starts on a cleared scene and the module is not entered."""
    state = PanelState(logic.getParameterNode)  # the widget was created (setup), never shown
    for _ in range(2):
        state.scene_closing()
        mrml.scene.Clear(0)  # what the self-test's setUp does, twice
        assert state.buttons(has_model=True).apply_enabled is False  # no volume yet
    volume = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sample")
    state.parameters.input_volume = volume  # the self-test chooses the sample volume
    buttons = state.buttons(has_model=True)
    assert buttons.apply_enabled and buttons.apply_text == "Segment"
    assert state.buttons(has_model=False).apply_enabled is False


def test_closing_the_scene_cancels_the_run_and_drops_the_result(mrml, volume, logic, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "sleep")
    state = PanelState(logic.getParameterNode)
    state.enter()
    job = _start_run(state, logic, volume)
    nodes_before = mrml.scene.GetNumberOfNodes()
    state.scene_closing()
    assert job.state is JobState.CANCELLED and not state.running
    assert mrml.scene.GetNumberOfNodes() == nodes_before  # the cancelled run added nothing
    assert state.enter() is None


def test_a_deleted_segmentation_is_not_shown_again(mrml, volume, logic, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "predict")
    state = PanelState(logic.getParameterNode)
    state.enter()
    job = _start_run(state, logic, volume)
    assert job.wait(timeout=120) is JobState.SUCCEEDED, job.full_log()
    state.exit()
    mrml.scene.RemoveNode(job.result.segmentation)  # the user deletes it in the Data module
    assert state.enter() is None
    assert state.buttons(has_model=True).review_enabled is False


def test_failed_run_changes_nothing_and_blocked_panel_never_runs(mrml, volume, logic, monkeypatch):
    monkeypatch.setenv("BATSEG_FAKE_MODE", "usererror")
    state = PanelState(logic.getParameterNode)
    state.enter()
    state.parameters.input_volume = volume
    job = _start_run(state, logic, volume)
    assert job.wait(timeout=120) is JobState.FAILED
    assert state.parameters.segmentation is None and state.enter() is None
    blocked = PanelState(logic.getParameterNode, blocked="Slicer 5.8 bundles Python 3.9.10 ...")
    buttons = blocked.buttons(has_model=True)
    assert not buttons.apply_enabled and not buttons.fine_tune_enabled


def test_fine_tuning_button_rules(mrml, logic):
    state = PanelState(logic.getParameterNode)

    class Running:  # a job that is running (its kind decides which button cancels it)
        running = True

    state.start(FINE_TUNE, Running())
    buttons = state.buttons(has_model=True)
    assert (buttons.fine_tune_text, buttons.fine_tune_enabled) == ("Cancel fine-tuning", True)
    assert (buttons.apply_text, buttons.apply_enabled, buttons.review_enabled) == ("Segment", False, False)


def test_result_table_viewer_layers_and_clicked_rows(mrml, volume, logic):
    state = PanelState(logic.getParameterNode)
    segmentation = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    probability = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "probability")
    lesion = SimpleNamespace(row=lambda: ["1", "Ependymoma", "80 %", "1.00", "10.0 x 10.0 x 10.0", "11-20"])
    result = SimpleNamespace(segmentation=segmentation, lesions=[lesion], probability=probability)
    job = SimpleNamespace(state=JobState.SUCCEEDED, result=result, running=False)
    state.start(SEGMENT, job, volume)
    shown = state.segmentation_finished(job)
    assert shown.table() == [lesion.row()]
    assert shown.viewer_layers() == {"background": volume, "foreground": probability, "foregroundOpacity": 0.4}
    result.probability = None
    assert shown.viewer_layers() == {"background": volume}
    assert state.lesion_at(0) == (lesion, volume)
    assert state.lesion_at(1) is None and state.lesion_at(-1) is None  # a row that is not there
    mrml.scene.RemoveNode(volume)  # the segmented volume was deleted
    assert state.lesion_at(0) is None
    unknown = PanelState(logic.getParameterNode)
    other = SimpleNamespace(state=JobState.SUCCEEDED, result=result, running=False)
    assert unknown.segmentation_finished(other).viewer_layers() is None  # not this panel's run: views untouched


def test_a_new_scene_takes_its_first_grey_volume_as_input(mrml, logic):
    state = PanelState(logic.getParameterNode)
    state.initialize(mrml.scene)
    assert state.parameters.input_volume is None  # nothing to choose
    mrml.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    state.initialize(mrml.scene)
    assert state.parameters.input_volume is None  # never a label map
    mrml.scene.Clear(0)
    grey = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "t1")
    state.initialize(mrml.scene)
    assert state.parameters.input_volume is grey
    chosen = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "chosen")
    state.parameters.input_volume = chosen
    state.initialize(mrml.scene)
    assert state.parameters.input_volume is chosen  # the user's choice is kept


def test_device_choice_rows():
    assert len(DEVICE_LABELS) == len(DEVICES) and DEVICE_LABELS[DEVICES.index("cuda")] == "GPU (CUDA)"
    assert [device_index(device_at(row)) for row in range(len(DEVICES))] == list(range(len(DEVICES)))
    assert device_at(-1) == "auto" and device_index("tpu") == 0  # nothing chosen / an unknown saved value


# -- the Widget's source (it needs the Slicer application to run) ---------------------------------

def _widget_methods() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(WIDGET_SOURCE.read_text(encoding="utf-8"))
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BATsegSlicerWidget")
    return {f.name: f for f in widget.body if isinstance(f, ast.FunctionDef)}


def _calls(function: ast.FunctionDef) -> list[str]:
    return [ast.unparse(node.func) for node in ast.walk(function) if isinstance(node, ast.Call)]


def test_widget_exit_keeps_the_parameter_node_and_the_run():
    methods = _widget_methods()
    assert set(_calls(methods["exit"])) == {"self.state.exit", "self.followParameterNode"}
    assert "self.followParameterNode(False)" in ast.unparse(methods["exit"])
    # No method hands the panel a None parameter node any more (the old exit() did).
    assert all("setParameterNode" not in _calls(method) for method in methods.values())


def test_widget_reads_parameters_only_through_the_state():
    source = WIDGET_SOURCE.read_text(encoding="utf-8")
    assert "_parameterNode" not in source and "Parameters(" not in source
    methods = _widget_methods()
    # A run's end goes through the state (which records the segmentation), whatever module is shown.
    assert "self.state.segmentation_finished" in _calls(methods["onSegmentationFinished"])
    # The scene's end re-initializes the panel whether or not the module is shown (runUnitTest).
    end_close = ast.unparse(methods["onSceneEndClose"])
    assert "isEntered" not in end_close and "self.updateGUIFromParameterNode()" in end_close
    # Choosing a volume updates the buttons even when nothing observes the node (module hidden).
    assert "self.updateButtons" in _calls(methods["updateParameterNodeFromGUI"])


def test_widget_receives_its_logic_objects():
    """As SlicerNNUnet's widget: each logic object may be given, else the default is made."""
    methods = _widget_methods()
    arguments = methods["__init__"].args
    given = ["logic", "dialogs", "installFlow", "gpuProbe"]
    assert [a.arg for a in arguments.args[2:]] == given and all(
        isinstance(d, ast.Constant) and d.value is None for d in arguments.defaults[-len(given):])
    create = ast.unparse(methods["createLogic"])
    for name, default in zip(given, ("BATsegLogic()", "SlicerDialogs()", "InstallFlow(", "GpuProbe()")):
        assert f"self.{name} = self.{name} or {default}" in create, name


def test_widget_leaves_dialogs_and_decisions_to_the_flows():
    """Every question and error box goes through the flows' Dialogs (tested with scripted answers);
    the Widget calls no installer, probe or job directly."""
    tree = ast.parse(WIDGET_SOURCE.read_text(encoding="utf-8"))
    widget = ast.unparse(next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BATsegSlicerWidget"))
    for call in ("confirmOkCancelDisplay", "confirmYesNoDisplay", "errorDisplay", "infoDisplay",
                 "tryWithErrorDisplay", "install.", "probe_process", "parse_probe", "job.poll", "job.cancel",
                 "read_manifest", "fine_tune_question"):
        assert call not in widget, call
