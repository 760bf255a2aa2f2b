"""The panel's runs (segmentation, fine-tuning) from the button press to the end: starting,
cancelling, the timer's polling, and what the panel shows of the progress and the outcome.

Plain code over PanelState (the running job and its kind) and the Logic, so that tests press
Segment / Fine-tune and follow the run through the same calls the panel's timer makes.

Decisions:
- Segment and Fine-tune turn into Cancel while their run goes on: pressing again cancels it.
- Neither starts on a blocked Slicer, nor while dependencies are missing: the user is offered
  to install them instead (install_flow), and presses again after the restart.
- The panel's values are written to the parameter node (`sync`) just before a run starts, so
  the run uses what is on screen.
- Fine-tuning asks first, with the run's budget and expected duration (dialog_texts
  .fine_tune_question, for the GPU the probe found when the device is "auto").
- The log shows each line of the job once, in order; the progress bar shows the latest
  (stage, done, total) event.
- A run ends with a status line (title, outcome, seconds) and the run's warnings, also for a
  failed run (e.g. a GPU out-of-memory fallback before a crash); a failed run also gets an
  error box with the full log behind it; a cancelled one only its status line.
- The timer runs while a job runs or the GPU probe waits for its answer, and stops after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from BATsegSlicerLib.dialog_texts import (
    FINE_TUNE_NOT_STARTED,
    SEGMENTATION_NOT_STARTED,
    fine_tune_question,
    job_failed_text,
)
from BATsegSlicerLib.dialogs import Dialogs
from BATsegSlicerLib.install_flow import InstallFlow, Log
from BATsegSlicerLib.jobs import Job, JobState
from BATsegSlicerLib.logic import exported_case_count
from BATsegSlicerLib.models import ModelEntry, read_manifest
from BATsegSlicerLib.panel_state import FINE_TUNE, SEGMENT, PanelState

OnFinished = Callable[[Job], None]


@dataclass(frozen=True)
class JobView:
    """What is new to show of a job since the panel last looked."""

    percent: int | None  # the progress bar's value; None: no progress reported yet
    progress_format: str  # the bar's text (Qt replaces %p with the percentage)
    new_lines: list[str]  # log lines not shown yet


@dataclass(frozen=True)
class JobOutcome:
    """What the panel shows when a job has ended."""

    view: JobView
    status: str  # "BATseg segmentation: succeeded (12.3 s)"
    warnings: list[str]  # shown under the status
    succeeded: bool  # the progress bar goes to 100 %
    error: str | None  # a failed run's error box (None: no box)
    details: str  # behind the error box's details button: the full log


def running_status(job: Job) -> str:
    return f"{job.title} running..."


class JobControl:
    """Starts, cancels and follows the panel's one job at a time."""

    def __init__(self, state: PanelState, logic: Any, dialogs: Dialogs, install_flow: InstallFlow,
                 log: Log) -> None:
        """`logic`: BATsegLogic (startSegmentation, startFineTuning); `log`: the panel's log, for the installer."""
        self.state = state
        self._logic = logic
        self._dialogs = dialogs
        self._install_flow = install_flow
        self._log = log
        self._lines_shown = 0

    # -- buttons ---------------------------------------------------------------------------
    def segment_pressed(self, model_path: str, sync: Callable[[], None], on_finished: OnFinished) -> Job | None:
        """Segment / Cancel; returns the job it started (None: cancelled, refused or not started)."""
        if self.state.segmenting:
            self.cancel()
            return None
        if not self._may_start():
            return None
        job = None
        with self._dialogs.guard(SEGMENTATION_NOT_STARTED):
            sync()
            parameters = self.state.parameters
            volume = parameters.input_volume
            job = self._logic.startSegmentation(volume, model_path, parameters.predict_options(),
                                                onFinished=on_finished)
            self._start(SEGMENT, job, volume)
        return job

    def fine_tune_pressed(self, model_path: str, sync: Callable[[], None], on_finished: OnFinished,
                          cuda: bool | None) -> Job | None:
        """Fine-tune / Cancel fine-tuning (`cuda`: the GPU probe's answer, None while unknown)."""
        if self.state.fine_tuning:
            self.cancel()
            return None
        if not self._may_start():
            return None
        sync()
        parameters = self.state.parameters
        folder, replay = parameters.text("ExportFolder"), parameters.text("ReplayData")
        count = exported_case_count(folder)
        question = None
        with self._dialogs.guard(FINE_TUNE_NOT_STARTED):  # the budget, before hours of CPU
            question = fine_tune_question(read_manifest(model_path), folder, count, parameters.epochs,
                                          parameters.predict_options().device, replay, cuda)
        if question is None or not self._dialogs.confirm(question):
            return None
        job = None
        with self._dialogs.guard(FINE_TUNE_NOT_STARTED):
            job = self._logic.startFineTuning(model_path, folder, parameters.epochs,
                                              parameters.predict_options().device,
                                              onFinished=on_finished, replayData=replay)
            self._start(FINE_TUNE, job)
        return job

    def _may_start(self) -> bool:
        """Not on a blocked Slicer, and not while dependencies are missing (installing is offered)."""
        return not self.state.blocked and not self._install_flow.offer(self._dialogs, self._log)

    def _start(self, kind: str, job: Job, volume: Any = None) -> None:
        self.state.start(kind, job, volume)
        self._lines_shown = 0  # the panel clears its log for the new job

    def cancel(self) -> None:
        self.state.cancel()

    # -- following the job -----------------------------------------------------------------
    def poll(self) -> JobView | None:
        """One timer tick: read the running job's output; what is new to show (None: no running job)."""
        job = self.state.job
        if job is None or not job.running:
            return None
        job.poll()  # may end the job: its on_finished callback runs inside
        return self.view(job)

    def view(self, job: Job) -> JobView:
        """The job's progress and the log lines not shown yet (each line is handed out once)."""
        percent, text = None, ""
        if job.progress is not None:
            stage, done, total = job.progress
            percent, text = (int(100 * done / total) if total else 0), f"{stage}: %p%"
        lines = job.log[self._lines_shown:]
        self._lines_shown = len(job.log)
        return JobView(percent, text, lines)

    def outcome(self, job: Job) -> JobOutcome:
        """What to show when `job` has ended."""
        failed = job.state is JobState.FAILED
        return JobOutcome(
            view=self.view(job),
            status=f"{job.title}: {job.state.value} ({job.total_seconds:.1f} s)",
            warnings=job.warnings,
            succeeded=job.state is JobState.SUCCEEDED,
            error=job_failed_text(job.title, job.error) if failed else None,
            details=job.full_log() if failed else "",
        )

    @staticmethod
    def new_model(job: Job) -> ModelEntry | None:
        """The model a fine-tuning job added (None unless it succeeded)."""
        return job.result if job.state is JobState.SUCCEEDED else None

    def timer_needed(self, probing: bool) -> bool:
        """Keep polling while a job runs or the GPU probe (`probing`) waits for its answer."""
        return self.state.running or probing
