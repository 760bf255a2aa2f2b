"""BATsegSlicer: spinal cord tumour segmentation on sagittal T1 Gd MRI (3D Slicer module).

This file holds only what needs the application: the Module (title, help, sample data), the
Widget (wires the panel's signals to the logic objects it receives, binds the panel to the
parameter node and renders what the logic objects decide) and the self-test that drives the
Widget in a real Slicer. All work and every decision is in BATsegSlicerLib (Logic, the panel's
state and flows, tested headless) and the engine `batseg`, which runs in a child process: never
torch in Slicer's own process.
"""

from __future__ import annotations  # type hints stay text: this file must load on Slicer 5.8's Python 3.9

import logging
import os

import ctk
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Only this check is imported unconditionally: on a Slicer whose Python is too old (5.8: 3.9)
# nothing else of the module or the engine is imported, so the panel can say why instead of the
# module failing to load.
from BATsegSlicerLib.compatibility import MIN_SLICER, slicer_version_text, startup_problem

STARTUP_PROBLEM = startup_problem(slicer_version=slicer_version_text(getattr(slicer, "app", None)))
if not STARTUP_PROBLEM:
    from BATsegSlicerLib import install
    from BATsegSlicerLib.commands import DEVICES
    from BATsegSlicerLib.dialog_texts import CASE_NOT_EXPORTED, fine_tuned_notice
    from BATsegSlicerLib.dialogs import SlicerDialogs
    from BATsegSlicerLib.gpu_probe import GpuProbe, ProbeState
    from BATsegSlicerLib.install_flow import DependencyStatus, InstallFlow
    from BATsegSlicerLib.job_control import JobControl, JobView, running_status
    from BATsegSlicerLib.jobs import Job, JobState
    from BATsegSlicerLib.lesion_report import TABLE_HEADERS
    from BATsegSlicerLib.logic import BATsegLogic, exported_case_count
    from BATsegSlicerLib.model_list import ModelList, model_info, removable
    from BATsegSlicerLib.panel_state import DEVICE_LABELS, PanelState, ShownResult, device_at, device_index
    from BATsegSlicerLib.run_summary import status_html

DISCLAIMER = ("Research software. The shipped model is trained on synthetic data only (phantoms, and "
              "synthetic lesions painted into real healthy scans); it has never seen a real tumour, is not a "
              "medical device and is not for clinical use.")


class BATsegSlicer(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "BATseg Spinal Tumours"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["BATsegSlicer contributors"]
        self.parent.helpText = (
            "Segments spinal meningioma, ependymoma, astrocytoma and hemangioblastoma on sagittal "
            "T1 post-gadolinium MRI with BATseg (nnU-Net with a boundary-aware surface-distance head). "
            "Review and correct the result in the Segment Editor, export corrected cases and fine-tune "
            f"the model on them. Needs 3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer. " + DISCLAIMER)
        self.parent.acknowledgementText = (
            "Method: Song et al., BATseg: boundary-aware multiclass spinal cord tumor segmentation on "
            "3D MRI. Built on nnU-Net (Isensee et al.) and 3D Slicer.")
        slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted():
    """Once Slicer has started: terminology, sample data, and what a crashed Slicer left behind.
    Each step only logs its failure: nothing here may break Slicer's start-up."""
    if STARTUP_PROBLEM:
        logging.warning(f"BATseg: {STARTUP_PROBLEM}")
        return
    from BATsegSlicerLib.run_folders import clean_stale_run_folders
    from BATsegSlicerLib.terminology import load_terminology_context

    steps = (("terminology context not loaded", lambda: load_terminology_context(slicer.modules.terminologies.logic())),
             ("sample data not registered", registerSampleData),
             ("stale run folders not cleaned", lambda: [logging.info(f"BATseg: {note}")
                                                        for note in clean_stale_run_folders()]))
    for failure, step in steps:
        try:
            step()
        except Exception as error:
            logging.warning(f"BATseg {failure}: {error}")


def registerSampleData():
    """Register the shipped synthetic sample cases with the Sample Data module."""
    from BATsegSlicerLib.sample_data import register_sample_data

    register_sample_data()


class BATsegSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: input, model, device, options, run/cancel, results, correction, export.

    It receives its logic objects (each made with its default when not given, as SlicerNNUnet's
    widget does) and only wires Qt signals to them and copies their answers onto the widgets:
    the decisions are plain code in BATsegSlicerLib, driven headless by the tests:
    panel_state (buttons, a run ending while another module is shown, what to show on return),
    job_control (runs, polling, outcomes), gpu_probe (the device line), install_flow
    (dependencies), model_list (models) and dialog_texts (what the dialogs say). The parameter
    node is always the scene's current one (`self.state.parameters`), never a kept reference:
    leaving the module only stops following it.
    """

    def __init__(self, parent=None, logic: BATsegLogic | None = None, dialogs: SlicerDialogs | None = None,
                 installFlow: InstallFlow | None = None, gpuProbe: GpuProbe | None = None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic  # BATsegLogic
        self.dialogs = dialogs  # dialogs.SlicerDialogs
        self.installFlow = installFlow  # install_flow.InstallFlow
        self.gpuProbe = gpuProbe  # gpu_probe.GpuProbe
        self.state = None  # panel_state.PanelState, on the Logic's parameter node
        self.jobs = None  # job_control.JobControl
        self.modelList = None  # model_list.ModelList
        self._observedNode = None  # the parameter node the panel follows while it is shown
        self._guiSynced = False  # the widgets show the parameter node's values (GUI -> node allowed)
        self._updatingGUI = False

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BATsegSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.disclaimerLabel.text = DISCLAIMER
        self.ui.compatibilityLabel.text = STARTUP_PROBLEM
        self.ui.compatibilityLabel.visible = bool(STARTUP_PROBLEM)
        if STARTUP_PROBLEM:  # the message only: nothing of the engine is loaded on this Slicer
            for widget in (self.ui.inputsCollapsibleButton, self.ui.optionsCollapsibleButton, self.ui.applyButton,
                           self.ui.resultsCollapsibleButton, self.ui.retrainCollapsibleButton,
                           self.ui.dependenciesCollapsibleButton):
                widget.enabled = False
            return
        self.createLogic()
        self.setupWidgets()
        self.connectSignals()
        self.refreshModels()
        self.installFlow.refresh()  # shown by showDependencies
        self.initializeParameterNode()
        self.updateGUIFromParameterNode()
        self.startGpuProbe()

    def createLogic(self) -> None:
        """The logic objects not given to the constructor, and the panel's flows over them."""
        self.logic = self.logic or BATsegLogic()
        self.state = PanelState(self.logic.getParameterNode, blocked=STARTUP_PROBLEM)
        self.dialogs = self.dialogs or SlicerDialogs()
        self.installFlow = self.installFlow or InstallFlow(blocked=STARTUP_PROBLEM)
        self.installFlow.on_change = self.showDependencies
        self.gpuProbe = self.gpuProbe or GpuProbe()
        self.jobs = JobControl(self.state, self.logic, self.dialogs, self.installFlow, self.appendLog)
        self.modelList = ModelList(self.logic, self.dialogs)

    def setupWidgets(self) -> None:
        for label in DEVICE_LABELS:
            self.ui.deviceComboBox.addItem(label)
        self.ui.exportFolderPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.replayDataPathLineEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.ui.resultsTable.setColumnCount(len(TABLE_HEADERS))
        self.ui.resultsTable.setHorizontalHeaderLabels(list(TABLE_HEADERS))
        self.ui.resultsTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.ui.resultsTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.timer = qt.QTimer()
        self.timer.setInterval(100)

    def connectSignals(self) -> None:
        self.timer.connect("timeout()", self.onTimer)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        for checkBox in (self.ui.ttaCheckBox, self.ui.postprocessCheckBox, self.ui.cropToCordCheckBox,
                         self.ui.oneTypeCheckBox, self.ui.probabilityCheckBox):
            checkBox.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        self.ui.exportFolderPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.reviewerLineEdit.connect("editingFinished()", self.updateParameterNodeFromGUI)
        self.ui.epochsSpinBox.connect("valueChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.replayDataPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.addModelButton.connect("clicked(bool)", self.onAddModel)
        self.ui.removeModelButton.connect("clicked(bool)", self.onRemoveModel)
        self.ui.openModelsFolderButton.connect("clicked(bool)", self.onOpenModelsFolder)
        self.ui.resultsTable.connect("cellClicked(int,int)", self.onLesionClicked)
        self.ui.show3DButton.connect("clicked(bool)", self.onShow3D)
        self.ui.correctButton.connect("clicked(bool)", self.onCorrect)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.fineTuneButton.connect("clicked(bool)", self.onFineTune)
        self.ui.installButton.connect("clicked(bool)", self.onInstallDependencies)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

    def cleanup(self):
        """Called when the application closes: stop any child process."""
        if self.state is None:
            return
        self.cancelRunning()
        self.gpuProbe.cancel()
        self.removeObservers()

    def enter(self):
        """The module is shown: follow the parameter node again and show the last result."""
        if self.state is None:
            return
        shown = self.state.enter()
        self.initializeParameterNode()
        self.followParameterNode(True)
        self.updateGUIFromParameterNode()
        self.showResult(shown)

    def exit(self):
        """Another module is shown: stop following the parameter node; a run goes on and ends normally."""
        if self.state is None:
            return
        self.state.exit()
        self.followParameterNode(False)

    def onSceneStartClose(self, caller, event):
        self.state.scene_closing()
        self.followParameterNode(False)
        self._guiSynced = False  # the widgets now show a scene that is going away
        self.showResult(None)

    def onSceneEndClose(self, caller, event):
        # Whether or not the module is shown (runUnitTest clears the scene before each test
        # method without entering the module): the panel must work on the new scene.
        self.initializeParameterNode()
        if self.state.shown:
            self.followParameterNode(True)
        self.updateGUIFromParameterNode()

    def onSceneEndImport(self, caller, event):
        # A loaded scene may bring its own parameter node values: show them, shown or not, so that
        # the widgets never write old values back.
        self.initializeParameterNode()
        self.updateGUIFromParameterNode()

    def initializeParameterNode(self):
        self.state.initialize(slicer.mrmlScene)

    def followParameterNode(self, follow):
        """Update the widgets when the parameter node changes (only while the module is shown)."""
        if self._observedNode is not None:
            self.removeObserver(self._observedNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self._observedNode = None
        if follow:
            self._observedNode = self.state.parameters.node
            self.addObserver(self._observedNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    # -- parameter node <-> GUI ----------------------------------------------------------------
    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            parameters = self.state.parameters
            self.ui.inputVolumeSelector.setCurrentNode(parameters.input_volume)
            self.ui.segmentationSelector.setCurrentNode(parameters.segmentation)
            index = self.ui.modelComboBox.findData(parameters.text("Model"))
            if index >= 0:
                self.ui.modelComboBox.setCurrentIndex(index)
            self.ui.deviceComboBox.setCurrentIndex(device_index(parameters.text("Device")))
            self.ui.ttaCheckBox.checked = parameters.flag("TTA")
            self.ui.postprocessCheckBox.checked = parameters.flag("Postprocess")
            self.ui.cropToCordCheckBox.checked = parameters.flag("CropToCord")
            self.ui.oneTypeCheckBox.checked = parameters.flag("OneTypePerLesion")
            self.ui.probabilityCheckBox.checked = parameters.flag("Probabilities")
            self.ui.exportFolderPathLineEdit.currentPath = parameters.text("ExportFolder")
            self.ui.reviewerLineEdit.text = parameters.text("Reviewer")
            self.ui.epochsSpinBox.value = parameters.epochs
            self.ui.replayDataPathLineEdit.currentPath = parameters.text("ReplayData")
        finally:
            self._updatingGUI = False
        self._guiSynced = True
        self.updateButtons()

    def updateParameterNodeFromGUI(self, *args):
        if self._updatingGUI or not self._guiSynced:
            return
        parameters = self.state.parameters
        wasModified = parameters.node.StartModify()
        parameters.input_volume = self.ui.inputVolumeSelector.currentNode()
        parameters.segmentation = self.ui.segmentationSelector.currentNode()
        parameters.set_text("Device", device_at(self.ui.deviceComboBox.currentIndex))
        parameters.set_flag("TTA", self.ui.ttaCheckBox.checked)
        parameters.set_flag("Postprocess", self.ui.postprocessCheckBox.checked)
        parameters.set_flag("CropToCord", self.ui.cropToCordCheckBox.checked)
        parameters.set_flag("OneTypePerLesion", self.ui.oneTypeCheckBox.checked)
        parameters.set_flag("Probabilities", self.ui.probabilityCheckBox.checked)
        parameters.set_text("ExportFolder", self.ui.exportFolderPathLineEdit.currentPath)
        parameters.set_text("Reviewer", self.ui.reviewerLineEdit.text)
        parameters.epochs = self.ui.epochsSpinBox.value
        parameters.set_text("ReplayData", self.ui.replayDataPathLineEdit.currentPath)
        # Last: a newly chosen model brings its own recommended options over the checkboxes.
        entry = self.currentModelEntry()
        parameters.select_model(self.currentModelPath(), entry.manifest if entry is not None else {})
        parameters.node.EndModify(wasModified)
        self.updateButtons()  # also when the module is not shown (nothing observes the node then)

    def updateButtons(self):
        buttons = self.state.buttons(has_model=bool(self.currentModelPath()),
                                     dependencies_missing=self.installFlow.missing)
        self.ui.applyButton.text = buttons.apply_text
        self.ui.applyButton.enabled = buttons.apply_enabled
        self.ui.fineTuneButton.text = buttons.fine_tune_text
        self.ui.fineTuneButton.enabled = buttons.fine_tune_enabled
        for button in (self.ui.show3DButton, self.ui.correctButton, self.ui.exportButton):
            button.enabled = buttons.review_enabled
        self.ui.installButton.enabled = buttons.install_enabled

    # -- models and devices --------------------------------------------------------------------
    def currentModelPath(self):
        index = self.ui.modelComboBox.currentIndex
        return (self.ui.modelComboBox.itemData(index) or "") if index >= 0 else ""

    def currentModelEntry(self):
        return self.modelList.entry(self.currentModelPath())

    def refreshModels(self, select=None):
        skipped = self.modelList.refresh()
        self._updatingGUI = True
        try:
            self.ui.modelComboBox.clear()
            for entry in self.modelList.entries:
                self.ui.modelComboBox.addItem(entry.label, entry.path)
        finally:
            self._updatingGUI = False
        self.ui.modelComboBox.setCurrentIndex(self.modelList.selection(select or self.state.parameters.text("Model")))
        self.showModelInfo()
        for line in skipped:
            self.appendLog(line)
        self.updateParameterNodeFromGUI()
        self.updateButtons()

    def onModelChanged(self, index):
        self.updateParameterNodeFromGUI()
        self.showModelInfo()
        self.updateButtons()

    def showModelInfo(self):
        entry = self.currentModelEntry()
        self.ui.modelInfoLabel.text = model_info(entry)
        self.ui.removeModelButton.enabled = removable(entry)

    def onRemoveModel(self):
        self.modelList.remove(self.currentModelEntry(), self.appendLog, self.refreshModels)

    def onAddModel(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, "Add a BATseg model file", "", "BATseg model (*.batseg)")
        if path:
            self.modelList.add(path, self.appendLog, lambda added: self.refreshModels(select=added))

    def onOpenModelsFolder(self):
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(self.modelList.user_folder()))

    def onDeviceChanged(self, index):
        self.updateParameterNodeFromGUI()
        self.showDeviceWarning()

    def startGpuProbe(self):
        """Ask a child process which GPU torch sees (torch never loads in Slicer's process)."""
        started = self.gpuProbe.start(self.logic.pythonExecutable)
        if started is ProbeState.PROBING:
            self.timer.start()
        elif started is ProbeState.FAILED:
            self.appendLog(self.gpuProbe.failure)
        else:
            self.showDeviceWarning()

    def showDeviceWarning(self):
        self.ui.deviceWarningLabel.text = self.gpuProbe.warning(device_at(self.ui.deviceComboBox.currentIndex))

    # -- running -------------------------------------------------------------------------------
    def onApplyButton(self):
        self.showPressed(self.jobs.segment_pressed(self.currentModelPath(), self.updateParameterNodeFromGUI,
                                                   self.onSegmentationFinished))

    def onFineTune(self):
        self.showPressed(self.jobs.fine_tune_pressed(self.currentModelPath(), self.updateParameterNodeFromGUI,
                                                     self.onFineTuneFinished, self.gpuProbe.cuda))

    def showPressed(self, job: Job | None) -> None:
        """After Segment or Fine-tune was pressed: a started job (None: cancelled or not started)."""
        if job is not None:
            self.ui.logTextEdit.clear()
            self.ui.progressBar.setValue(0)
            self.setStatus(running_status(job))
            self.timer.start()
        self.updateButtons()

    def cancelRunning(self):
        self.jobs.cancel()
        self.updateButtons()

    def onTimer(self):
        view = self.jobs.poll()
        if view is not None:
            self.showJobView(view)
        if self.gpuProbe.poll():
            self.showDeviceWarning()
        if not self.jobs.timer_needed(self.gpuProbe.probing):
            self.timer.stop()

    def showJobView(self, view: JobView) -> None:
        if view.percent is not None:
            self.ui.progressBar.setValue(view.percent)
            self.ui.progressBar.setFormat(view.progress_format)
        for line in view.new_lines:
            self.appendLog(line)

    def appendLog(self, text):
        self.ui.logTextEdit.appendPlainText(text)

    def setStatus(self, text, warnings=()):
        """The status line, with the run's warnings in orange below it (the label is rich text)."""
        self.ui.statusLabel.text = status_html(text, warnings)

    def finishJob(self, job: Job) -> None:
        outcome = self.jobs.outcome(job)
        self.showJobView(outcome.view)
        self.setStatus(outcome.status, outcome.warnings)
        if outcome.succeeded:
            self.ui.progressBar.setValue(100)
        if outcome.error is not None:
            self.dialogs.error(outcome.error, outcome.details)
        self.updateButtons()

    def onSegmentationFinished(self, job):
        """Called when the run ends, whichever module is shown then."""
        shown = self.state.segmentation_finished(job)  # records the segmentation in the parameter node
        self.finishJob(job)
        if shown is None:
            return
        self.showResult(shown)
        layers = shown.viewer_layers()
        if layers is not None:
            slicer.util.setSliceViewerLayers(**layers)
        self.updateGUIFromParameterNode()  # the new segmentation, also while another module is shown

    def showResult(self, shown: ShownResult | None) -> None:
        """The lesion table and summary of a result (None: empty them)."""
        rows = shown.table() if shown is not None else []
        table = self.ui.resultsTable
        table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        self.ui.resultsSummaryLabel.text = shown.result.summary if shown is not None else ""

    def onFineTuneFinished(self, job):
        self.finishJob(job)
        model = self.jobs.new_model(job)
        if model is not None:
            self.refreshModels(select=model.path)
            self.dialogs.info(fine_tuned_notice(model.label))

    # -- review ---------------------------------------------------------------------------------
    def onLesionClicked(self, row, column):
        found = self.state.lesion_at(row)
        if found is not None:
            self.logic.jumpToLesion(*found)

    def onShow3D(self):
        self.logic.showIn3D(self.state.parameters.segmentation)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None and layoutManager.threeDWidget(0) is not None:
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def onCorrect(self):
        """Open the Segment Editor with this segmentation and volume selected."""
        parameters = self.state.parameters
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(parameters.segmentation)
        editor.setSourceVolumeNode(parameters.input_volume)

    def onExport(self):
        self.updateParameterNodeFromGUI()
        parameters = self.state.parameters
        with self.dialogs.guard(CASE_NOT_EXPORTED):
            case = self.logic.exportForRetraining(parameters.segmentation, parameters.input_volume,
                                                  parameters.text("ExportFolder"), parameters.text("Reviewer"))
            self.appendLog(f"Exported {case.case_id} to {case.folder} "
                           f"({exported_case_count(case.folder)} case(s) in the folder).")
            self.setStatus(f"Exported {case.case_id}")

    # -- dependencies ---------------------------------------------------------------------------
    def showDependencies(self, status: DependencyStatus) -> None:
        """What install_flow found (after each of its checks): the section's text, and the buttons."""
        self.ui.dependencyStatusLabel.text = status.text
        if status.expand:
            self.ui.dependenciesCollapsibleButton.collapsed = False
        self.updateButtons()

    def onInstallDependencies(self, checked=False):
        self.installFlow.install(self.dialogs, self.appendLog)


class BATsegSlicerTest(ScriptedLoadableModuleTest):
    """Self-test in the real application: the panel, a run of the Logic, correction and export.

    It runs the way ctest and the SelfTests module run it (slicer.testing.runUnitTest): every
    test_* method on a scene cleared by setUp, with the module never entered; it must not depend
    on whether the module is shown. A run is started, the module is left (exit) and entered
    again while it runs, and the result must be on the panel afterwards.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_panel()
        self.setUp()
        self.test_segment_and_export()

    def test_panel(self):
        """The panel shows the disclaimer, the device choices and a model list; on a Slicer that is
        too old, the reason at the top and nothing usable."""
        widget = slicer.modules.batsegslicer.widgetRepresentation().self()
        self.assertIn("not for clinical use", widget.ui.disclaimerLabel.text)
        self.assertEqual(widget.ui.compatibilityLabel.text, STARTUP_PROBLEM)
        if STARTUP_PROBLEM:
            self.assertIn(f"Install 3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer", STARTUP_PROBLEM)
            self.assertFalse(widget.ui.applyButton.enabled)
            self.assertFalse(widget.ui.dependenciesCollapsibleButton.enabled)
            return
        self.assertEqual(widget.ui.deviceComboBox.count, len(DEVICES))
        self.assertEqual(widget.ui.resultsTable.columnCount, len(TABLE_HEADERS))
        widget.updateButtons()
        self.assertIsNone(widget.ui.inputVolumeSelector.currentNode())  # the scene was cleared
        self.assertFalse(widget.ui.applyButton.enabled)  # nothing to segment yet
        entry = widget.currentModelEntry()
        if entry is not None:  # the model's measured quality is shown where it is chosen
            self.assertIn(entry.held_out_summary, widget.ui.modelInfoLabel.text)

    def test_segment_and_export(self):
        """Segment a shipped sample with the shipped model through the panel (leaving the module
        and coming back while it runs), then export it."""
        import html
        import tempfile

        if STARTUP_PROBLEM:
            self.delayDisplay("Skipped: needs Slicer 5.10 or newer")
            return
        import SampleData

        from BATsegSlicerLib.sample_data import read_sample_cases

        widget = slicer.modules.batsegslicer.widgetRepresentation().self()
        entries = [e for e in widget.logic.models()[0] if e.shipped]
        cases = [c for c in read_sample_cases() if os.path.isfile(c.image)]
        if not entries or not cases or install.check():
            self.delayDisplay("Skipped: needs the shipped model, a sample case and the installed dependencies")
            return
        volume = SampleData.downloadSample(cases[0].name)
        if isinstance(volume, list):
            volume = volume[0]
        wasShown = widget.state.shown  # "Reload and Test" shows the module; ctest does not
        widget.ui.inputVolumeSelector.setCurrentNode(volume)
        widget.ui.deviceComboBox.setCurrentIndex(DEVICES.index("cpu"))
        self.assertTrue(widget.ui.applyButton.enabled, "Segment must be enabled with the module not entered")
        widget.ui.applyButton.click()
        self.assertEqual(widget.ui.applyButton.text, "Cancel")  # Apply turned into Cancel while running
        job = widget.state.job
        widget.exit()  # the user opens another module while the run goes on
        while job.running:
            slicer.app.processEvents()
            widget.onTimer()
        self.assertEqual(job.state, JobState.SUCCEEDED, job.full_log())
        widget.enter()  # and comes back: the result is on the panel
        segmentation = widget.ui.segmentationSelector.currentNode()
        self.assertIsNotNone(segmentation)
        self.assertIs(segmentation, job.result.segmentation)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 4)
        self.assertEqual(widget.ui.resultsTable.rowCount, len(job.result.lesions))
        self.assertEqual(widget.ui.resultsSummaryLabel.text, job.result.summary)
        for warning in job.result.warnings:
            self.assertIn(html.escape(warning), widget.ui.statusLabel.text)
        with tempfile.TemporaryDirectory() as folder:
            widget.ui.exportFolderPathLineEdit.currentPath = folder
            widget.ui.exportButton.click()
            self.assertEqual(exported_case_count(folder), 1)
        if not wasShown:
            widget.exit()
        self.delayDisplay("BATseg self-test passed")
