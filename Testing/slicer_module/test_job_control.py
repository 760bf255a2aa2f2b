"""The panel's runs (BATsegSlicerLib/job_control.py) driven as a user drives the panel (issue 20,
item 11), with the stand-in engine and scripted dialogs: press Segment, the timer polls, the run
ends (succeeded, failed, cancelled by pressing again); Fine-tune pressed and cancelled; neither
starts on a blocked Slicer or while dependencies are missing. What the panel would show (buttons,
log lines, progress, status, error box) is checked at each step, as the Widget renders it.
"""

from __future__ import annotations

import os
import time

import pytest

from BATsegSlicerLib import logic as logic_module
from BATsegSlicerLib.install import Problem
from BATsegSlicerLib.install_flow import InstallFlow
from BATsegSlicerLib.job_control import JobControl, running_status
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.logic import BATsegLogic
from BATsegSlicerLib.panel_state import PanelState
from panel_fakes import ScriptedDialogs
from slicer_test_support import fake_interpreter


@pytest.fixture
def logic(tmp_path):
    """A Logic whose child process is the stand-in engine."""
    return BATsegLogic(userModelsDir=str(tmp_path / "models"), python=fake_interpreter(tmp_path))


@pytest.fixture
def any_model(monkeypatch):
    """Segmentation runs accept any model path (model files are tested in test_models.py)."""
    monkeypatch.setattr(logic_module, "read_manifest", lambda path: {"name": "fake", "version": "0"})
    return "model.batseg"


class Panel:
    """What the Widget does with JobControl: press, poll on the timer, render the end of a run."""

    def __init__(self, logic, dialogs, blocked: str = "", problems: list | None = None) -> None:
        self.state = PanelState(logic.getParameterNode, blocked=blocked)
        self.dialogs = dialogs
        self.installed: list[str] = []
        self.flow = InstallFlow(blocked, check=lambda: list(problems or []), install_dependencies=self._install)
        self.flow.refresh()  # as the Widget's setup does
        self.control = JobControl(self.state, logic, dialogs, self.flow, self.installed.append)
        self.lines: list[str] = []  # the panel's log
        self.percent: int | None = None
        self.outcomes = []
        self.shown = []

    def _install(self, log) -> bool:
        log("installing")
        return True

    def press_segment(self, model: str = "model.batseg"):
        job = self.control.segment_pressed(model, lambda: None, self.segmentation_finished)
        if job is not None:
            self.lines = []  # the Widget clears its log for a new run
        return job

    def segmentation_finished(self, job) -> None:
        self.shown.append(self.state.segmentation_finished(job))
        self.render_outcome(job)

    def render_outcome(self, job) -> None:
        outcome = self.control.outcome(job)
        self.lines += outcome.view.new_lines
        self.outcomes.append(outcome)
        if outcome.error is not None:
            self.dialogs.error(outcome.error, outcome.details)

    def tick(self) -> bool:
        """One timer tick; False once the timer would stop."""
        view = self.control.poll()
        if view is not None:
            self.lines += view.new_lines
            self.percent = view.percent if view.percent is not None else self.percent
        return self.control.timer_needed(probing=False)

    def run_timer(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.tick():
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.05)

    def buttons(self):
        return self.state.buttons(has_model=True, dependencies_missing=self.flow.missing)


def segment(logic, volume, mode: str, monkeypatch) -> tuple[Panel, ScriptedDialogs, object]:
    """A volume chosen and Segment pressed, the stand-in engine in `mode`; no question may be asked."""
    monkeypatch.setenv("BATSEG_FAKE_MODE", mode)
    dialogs = ScriptedDialogs()
    panel = Panel(logic, dialogs)
    panel.state.parameters.input_volume = volume
    assert (panel.buttons().apply_text, panel.buttons().apply_enabled) == ("Segment", True)
    return panel, dialogs, panel.press_segment()


def test_segment_runs_polls_and_succeeds(mrml, volume, logic, any_model, monkeypatch):
    panel, _, job = segment(logic, volume, "predict", monkeypatch)
    assert job is panel.state.job and running_status(job) == "BATseg segmentation running..."
    buttons = panel.buttons()
    assert (buttons.apply_text, buttons.apply_enabled, buttons.fine_tune_enabled, buttons.review_enabled) == \
        ("Cancel", True, False, False)
    assert panel.control.timer_needed(probing=False)
    panel.run_timer()
    [outcome] = panel.outcomes
    assert job.state is JobState.SUCCEEDED, job.full_log()
    assert panel.lines == job.log  # every line once, in order
    assert outcome.status == f"BATseg segmentation: succeeded ({job.total_seconds:.1f} s)"
    assert outcome.succeeded and outcome.error is None and outcome.warnings == job.warnings
    [shown] = panel.shown
    assert shown.result is job.result and panel.state.parameters.segmentation is job.result.segmentation
    assert shown.viewer_layers() == {"background": volume}
    assert shown.table() == [lesion.row() for lesion in job.result.lesions] and shown.table()
    buttons = panel.buttons()
    assert (buttons.apply_text, buttons.apply_enabled, buttons.review_enabled) == ("Segment", True, True)
    assert panel.control.poll() is None and not panel.control.timer_needed(probing=False)
    assert panel.control.timer_needed(probing=True)  # the GPU check still waits for its answer


def test_a_failed_run_shows_its_error_and_full_log(mrml, volume, logic, any_model, monkeypatch):
    panel, dialogs, job = segment(logic, volume, "usererror", monkeypatch)
    panel.run_timer()
    [outcome] = panel.outcomes
    assert job.state is JobState.FAILED and not outcome.succeeded
    assert outcome.status.startswith("BATseg segmentation: failed (")
    assert dialogs.errors == [("BATseg segmentation failed: input.nii.gz is 2-D: pass a 3-D volume", job.full_log())]
    assert panel.shown == [None] and panel.state.parameters.segmentation is None
    assert panel.buttons().apply_text == "Segment" and not panel.buttons().review_enabled


def test_pressing_cancel_ends_the_run_without_an_error(mrml, volume, logic, any_model, monkeypatch):
    panel, dialogs, job = segment(logic, volume, "sleep", monkeypatch)
    deadline = time.monotonic() + 60
    while panel.percent is None:  # the timer shows the engine's progress
        assert panel.tick() and time.monotonic() < deadline
        time.sleep(0.05)
    assert panel.control.view(job).progress_format == "predict: %p%"
    assert panel.press_segment() is None  # Cancel
    [outcome] = panel.outcomes
    assert job.state is JobState.CANCELLED and outcome.status.startswith("BATseg segmentation: cancelled (")
    assert outcome.error is None and not outcome.succeeded and dialogs.errors == []
    assert panel.lines[-1].startswith("BATseg segmentation: cancelled, total time")
    assert not panel.tick() and panel.buttons().apply_text == "Segment"


def test_fine_tuning_is_cancelled_by_its_own_button(mrml, logic, tmp_path, monkeypatch):
    from batseg.models import default_model_path

    monkeypatch.setenv("BATSEG_FAKE_MODE", "sleep")
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "dataset.json").write_text('{"numTraining": 1}')
    panel = Panel(logic, ScriptedDialogs(True))  # OK to the budget question
    panel.state.parameters.set_text("ExportFolder", str(exports))
    panel.state.parameters.set_text("Device", "cpu")
    model = str(default_model_path())
    job = panel.control.fine_tune_pressed(model, lambda: None, panel.render_outcome, cuda=None)
    assert job is not None and panel.state.fine_tuning
    buttons = panel.buttons()
    assert (buttons.fine_tune_text, buttons.fine_tune_enabled, buttons.apply_enabled) == \
        ("Cancel fine-tuning", True, False)
    assert panel.control.fine_tune_pressed(model, lambda: None, panel.render_outcome, cuda=None) is None
    assert job.state is JobState.CANCELLED and panel.control.new_model(job) is None
    assert not os.listdir(tmp_path / "models")  # no half-written model is left
    assert panel.buttons().fine_tune_text == "Fine-tune on exported cases"


def test_nothing_starts_on_a_blocked_slicer(mrml, volume, logic, any_model):
    dialogs = ScriptedDialogs()  # not even a question
    panel = Panel(logic, dialogs, blocked="Slicer 5.8.1 bundles Python 3.9.10 ...")
    panel.state.parameters.input_volume = volume
    assert panel.press_segment() is None
    assert panel.control.fine_tune_pressed("model.batseg", lambda: None, panel.render_outcome, None) is None
    assert panel.state.job is None and dialogs.asked == []


def test_missing_dependencies_are_offered_instead_of_a_run(mrml, volume, logic, any_model):
    missing = [Problem("torch", ">=2.1.2", None)]
    declined = ScriptedDialogs(False)
    panel = Panel(logic, declined, problems=missing)
    panel.state.parameters.input_volume = volume
    assert panel.buttons().install_enabled
    assert panel.press_segment() is None and panel.state.job is None
    assert declined.asked == ["BATseg needs: torch (not installed). Install now?"] and panel.installed == []
    accepted = ScriptedDialogs(True, False)  # OK to installing, No to restarting
    panel = Panel(logic, accepted, problems=missing)
    panel.state.parameters.input_volume = volume
    assert panel.press_segment() is None and panel.state.job is None  # pressed again after the restart
    assert accepted.asked == ["BATseg needs: torch (not installed). Install now?",
                              "Dependencies installed. Restart Slicer now to use them?"]
    assert panel.installed == ["installing"]
