"""The panel's decisions, without Qt: what its buttons say and allow, what happens when a run
ends, and what the panel shows when the user comes back to the module.

The Widget (BATsegSlicer.py) only copies these decisions onto its widgets, so headless tests
drive the same sequence Slicer does (enter, start a run, exit to another module, the run ends,
enter again; or the scene cleared between self-test methods) and fail when it goes wrong.

Decisions:
- The parameter node is asked for each time it is needed (`parameter_node()`, i.e. the Logic's
  `getParameterNode()`: the scene's singleton, created if missing), never kept. Leaving the
  module, closing the scene, or `slicer.testing.runUnitTest` clearing the scene before each
  test method with the module never entered, cannot leave the panel holding None or a removed
  node: a run that ends then still records its segmentation, and Segment is enabled as soon as
  a volume is chosen.
- Leaving the module (`exit`) keeps the run and its result; only the Widget stops following the
  parameter node (as Slicer's module template and MONAIAuto3DSeg do).
- A run ends the same way whichever module is shown: its segmentation becomes the parameter
  node's, the result is kept, and `enter` hands it back so the panel shows its lesion table
  and summary again; a result whose segmentation or volume has been removed from the scene is
  dropped instead.
- Closing the scene cancels a running job (its nodes would otherwise land in the next scene)
  and drops the result.
- `blocked` (compatibility.startup_problem) disables Segment, Fine-tune and Install for good.
- A new scene's input is its first grey-value volume (never a label map).
- The result's table rows and slice-view layers (the probability map over the volume, at 40 %
  opacity, when it was asked for) are built here; a clicked row the result does not have (or a
  result whose nodes were removed) jumps nowhere.
The flows behind the buttons are in job_control (runs), install_flow (dependencies) and
model_list (models); their dialog texts in dialog_texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from BATsegSlicerLib.commands import DEVICES
from BATsegSlicerLib.jobs import Job, JobState
from BATsegSlicerLib.parameter_node import Parameters

SEGMENT = "segment"
FINE_TUNE = "finetune"
DEVICE_LABELS = ("Auto", "CPU", "GPU (CUDA)")  # the device choice's items, in commands.DEVICES order
PROBABILITY_OPACITY = 0.4  # the probability map over the volume: both stay readable


def device_at(index: int) -> str:
    """The device of the choice's row `index` (-1, nothing chosen: "auto")."""
    return DEVICES[max(0, index)]


def device_index(device: str) -> int:
    """The choice's row for a parameter node's device (an unknown one: "auto")."""
    return DEVICES.index(device) if device in DEVICES else 0


@dataclass(frozen=True)
class Buttons:
    """Text and enabled state of the panel's buttons."""

    apply_text: str
    apply_enabled: bool
    fine_tune_text: str
    fine_tune_enabled: bool
    review_enabled: bool  # Show 3D, Correct in Segment Editor, Export reviewed case
    install_enabled: bool  # Install dependencies


@dataclass
class ShownResult:
    """A finished segmentation run as the panel shows it, with the volume that was segmented."""

    result: Any  # logic.SegmentationResult
    volume: Any  # the input volume of the run (the selector may have changed since)

    def table(self) -> list[list[str]]:
        """The lesion table's rows (lesion_report.TABLE_HEADERS order)."""
        return [lesion.row() for lesion in self.result.lesions]

    def viewer_layers(self) -> dict[str, Any] | None:
        """slicer.util.setSliceViewerLayers' arguments: the volume, under its probability map if
        there is one (None: the volume is not known, leave the views as they are)."""
        if self.volume is None:
            return None
        if self.result.probability is None:
            return {"background": self.volume}
        return {"background": self.volume, "foreground": self.result.probability,
                "foregroundOpacity": PROBABILITY_OPACITY}


class PanelState:
    """The state behind the panel: the running job, the last result, whether the module is shown."""

    def __init__(self, parameter_node: Callable[[], Any], blocked: str = "") -> None:
        self._parameter_node = parameter_node
        self.blocked = blocked
        self.shown = False
        self.job: Job | None = None
        self.job_kind = ""
        self._job_volume = None
        self._result: ShownResult | None = None

    @property
    def parameters(self) -> Parameters:
        """The parameter node of the current scene (never None, never a removed node)."""
        return Parameters(self._parameter_node())

    # -- module life cycle -------------------------------------------------------------------
    def enter(self) -> ShownResult | None:
        """The module is shown; returns the result the panel must show (None: clear it)."""
        self.shown = True
        return self.result()

    def exit(self) -> None:
        """Another module is shown: the run and its result are kept."""
        self.shown = False

    def initialize(self, scene: Any) -> None:
        """Defaults for a new scene: its first grey-value volume as input."""
        parameters = self.parameters
        if parameters.input_volume is None:
            volume = scene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume is not None and not volume.IsA("vtkMRMLLabelMapVolumeNode"):
                parameters.input_volume = volume

    def scene_closing(self) -> None:
        """The scene is about to be closed (or cleared): cancel a run, forget the result."""
        self.cancel()
        self._result = None

    # -- runs ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    @property
    def segmenting(self) -> bool:
        return self.running and self.job_kind == SEGMENT

    @property
    def fine_tuning(self) -> bool:
        return self.running and self.job_kind == FINE_TUNE

    def start(self, kind: str, job: Job, volume=None) -> None:
        """A job was started (`volume`: the volume a segmentation run segments)."""
        self.job = job
        self.job_kind = kind
        self._job_volume = volume

    def cancel(self) -> None:
        if self.running:
            self.job.cancel()

    def segmentation_finished(self, job: Job) -> ShownResult | None:
        """A segmentation job ended (whichever module is shown): on success its segmentation
        becomes the parameter node's and the result is kept; returns it (None otherwise)."""
        if job.state is not JobState.SUCCEEDED or job.result is None:
            return None
        volume = self._job_volume if job is self.job else None
        self.parameters.segmentation = job.result.segmentation
        self._result = ShownResult(job.result, volume)
        return self._result

    def result(self) -> ShownResult | None:
        """The last result, while its nodes are still in the scene."""
        shown = self._result
        if shown is None:
            return None
        nodes = [shown.result.segmentation] + ([shown.volume] if shown.volume is not None else [])
        if any(node is None or node.GetScene() is None for node in nodes):
            self._result = None  # removed by the user, or the scene was closed
        return self._result

    def lesion_at(self, row: int) -> tuple[Any, Any] | None:
        """(lesion, volume) of the result table's row `row`; None if there is no such row."""
        shown = self.result()
        if shown is None or not 0 <= row < len(shown.result.lesions):
            return None
        return shown.result.lesions[row], shown.volume

    # -- buttons -------------------------------------------------------------------------------
    def buttons(self, has_model: bool, dependencies_missing: bool = False) -> Buttons:
        """What the buttons say and allow now (`has_model`: a model file is selected;
        `dependencies_missing`: install_flow found something to install)."""
        running = self.running
        parameters = self.parameters
        has_input = parameters.input_volume is not None
        has_segmentation = parameters.segmentation is not None
        usable = not self.blocked and not running
        return Buttons(
            apply_text="Cancel" if self.segmenting else "Segment",
            apply_enabled=self.segmenting or (usable and has_input and has_model),
            fine_tune_text="Cancel fine-tuning" if self.fine_tuning else "Fine-tune on exported cases",
            fine_tune_enabled=self.fine_tuning or (usable and has_model),
            review_enabled=has_segmentation and not running,
            install_enabled=dependencies_missing and usable,
        )

