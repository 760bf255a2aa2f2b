"""BATsegSlicer: spinal cord tumour segmentation on sagittal T1 Gd MRI (3D Slicer module).

This file holds only what needs the application: the Module (title, help, sample data), the
Widget (binds the panel to the parameter node, calls the Logic, shows progress) and the
self-test that drives the Widget in a real Slicer. All work is in BATsegSlicerLib (Logic) and
the engine `batseg`, which runs in a child process: never torch in Slicer's own process.
"""

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
    from BATsegSlicerLib.gpu import parse_probe, probe_process
    from BATsegSlicerLib.jobs import JobState
    from BATsegSlicerLib.lesion_report import TABLE_HEADERS
    from BATsegSlicerLib.logic import BATsegLogic, exported_case_count
    from BATsegSlicerLib.models import read_manifest
    from BATsegSlicerLib.panel_state import FINE_TUNE, SEGMENT, PanelState, fine_tune_question
    from BATsegSlicerLib.run_summary import status_html

DISCLAIMER = ("Research software. The shipped model is trained on synthetic phantoms only; "
              "it is not a medical device and is not for clinical use.")
DEVICE_LABELS = ("Auto", "CPU", "GPU (CUDA)")  # same order as commands.DEVICES


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

    The decisions (buttons, a run ending while another module is shown, what to show on return)
    are made by BATsegSlicerLib.panel_state.PanelState, tested headless; this class copies them
    onto the widgets. The parameter node is always the scene's current one (`self.state.parameters`),
    never a kept reference: leaving the module only stops following it.
    """

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.state = None
        self._observedNode = None  # the parameter node the panel follows while it is shown
        self._guiSynced = False  # the widgets show the parameter node's values (GUI -> node allowed)
        self._updatingGUI = False
        self.probe = None
        self.gpuInfo = None
        self.modelEntries = []
        self.dependencyProblems = []
        self._logShown = 0

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
        self.logic = BATsegLogic()
        self.state = PanelState(self.logic.getParameterNode, blocked=STARTUP_PROBLEM)

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
        self.timer.connect("timeout()", self.onTimer)

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        for checkBox in (self.ui.ttaCheckBox, self.ui.postprocessCheckBox, self.ui.oneTypeCheckBox,
                         self.ui.probabilityCheckBox):
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
        self.refreshModels()
        self.refreshDependencies()
        self.initializeParameterNode()
        self.updateGUIFromParameterNode()
        self.startGpuProbe()

    def cleanup(self):
        """Called when the application closes: stop any child process."""
        if self.state is None:
            return
        self.cancelRunning()
        if self.probe is not None and not self.probe.finished:
            self.probe.cancel()
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
        """Defaults for a new scene: the first scalar volume as input."""
        parameters = self.state.parameters
        if parameters.input_volume is None:
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume is not None and not volume.IsA("vtkMRMLLabelMapVolumeNode"):
                parameters.input_volume = volume

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
            device = parameters.text("Device")
            self.ui.deviceComboBox.setCurrentIndex(DEVICES.index(device) if device in DEVICES else 0)
            self.ui.ttaCheckBox.checked = parameters.flag("TTA")
            self.ui.postprocessCheckBox.checked = parameters.flag("Postprocess")
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
        parameters.set_text("Device", DEVICES[max(0, self.ui.deviceComboBox.currentIndex)])
        parameters.set_flag("TTA", self.ui.ttaCheckBox.checked)
        parameters.set_flag("Postprocess", self.ui.postprocessCheckBox.checked)
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
        buttons = self.state.buttons(has_model=bool(self.currentModelPath()))
        self.ui.applyButton.text = buttons.apply_text
        self.ui.applyButton.enabled = buttons.apply_enabled
        self.ui.fineTuneButton.text = buttons.fine_tune_text
        self.ui.fineTuneButton.enabled = buttons.fine_tune_enabled
        for button in (self.ui.show3DButton, self.ui.correctButton, self.ui.exportButton):
            button.enabled = buttons.review_enabled
        self.ui.installButton.enabled = bool(self.dependencyProblems) and not self.state.blocked \
            and not self.state.running

    # -- models and devices --------------------------------------------------------------------
    def currentModelPath(self):
        index = self.ui.modelComboBox.currentIndex
        return (self.ui.modelComboBox.itemData(index) or "") if index >= 0 else ""

    def refreshModels(self, select=None):
        entries, problems = self.logic.models()
        self.modelEntries = entries
        self._updatingGUI = True
        try:
            self.ui.modelComboBox.clear()
            for entry in entries:
                self.ui.modelComboBox.addItem(entry.label, entry.path)
        finally:
            self._updatingGUI = False
        target = select or self.state.parameters.text("Model")
        index = self.ui.modelComboBox.findData(target) if target else -1
        self.ui.modelComboBox.setCurrentIndex(index if index >= 0 else (0 if entries else -1))
        self.showModelInfo()
        for problem in problems:
            self.appendLog(f"Model file skipped: {problem}")
        self.updateParameterNodeFromGUI()
        self.updateButtons()

    def currentModelEntry(self):
        path = self.currentModelPath()
        return next((entry for entry in self.modelEntries if entry.path == path), None)

    def onModelChanged(self, index):
        self.updateParameterNodeFromGUI()
        self.showModelInfo()
        self.updateButtons()

    def showModelInfo(self):
        entry = self.currentModelEntry()
        if entry is None:
            self.ui.modelInfoLabel.text = "No model file found: add one with 'Add model file...'."
        else:
            parts = (f"{entry.title} {entry.version}.", entry.postprocessing_summary, entry.held_out_summary,
                     entry.disclaimer)
            self.ui.modelInfoLabel.text = " ".join(part for part in parts if part)
        self.ui.removeModelButton.enabled = entry is not None and not entry.shipped

    def onRemoveModel(self):
        entry = self.currentModelEntry()
        if entry is None or entry.shipped:
            return
        if not slicer.util.confirmOkCancelDisplay(f"Delete the model file {entry.path}?"):
            return
        with slicer.util.tryWithErrorDisplay("The model was not removed."):
            self.logic.library.remove(entry)
            self.appendLog(f"Model removed: {entry.label}")
            self.refreshModels()

    def onAddModel(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, "Add a BATseg model file", "", "BATseg model (*.batseg)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay("The model file was not added.", waitCursor=True):
            entry = self.logic.addModel(path)
            self.appendLog(f"Model added: {entry.label}")
            self.refreshModels(select=entry.path)

    def onOpenModelsFolder(self):
        os.makedirs(self.logic.library.user_dir, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(self.logic.library.user_dir))

    def onDeviceChanged(self, index):
        self.updateParameterNodeFromGUI()
        self.showDeviceWarning()

    def startGpuProbe(self):
        """Ask a child process which GPU torch sees (torch never loads in Slicer's process)."""
        if install.torch_missing():
            self.showDeviceWarning()
            return
        try:
            self.probe = probe_process(self.logic.pythonExecutable())
            self.probe.start()
            self._probeLines = []
            self.timer.start()
        except Exception as error:  # the probe is advisory: never block the panel on it
            self.probe = None
            self.appendLog(f"GPU check failed: {error}")

    def showDeviceWarning(self):
        device = DEVICES[max(0, self.ui.deviceComboBox.currentIndex)]
        if install.torch_missing():
            warning = "PyTorch is not installed yet: see Dependencies below"
        elif self.gpuInfo is None:
            warning = "Checking the GPU..." if self.probe is not None else ""
        else:
            warning = self.gpuInfo.warning(device) or self.gpuInfo.describe()
        self.ui.deviceWarningLabel.text = warning

    # -- running -------------------------------------------------------------------------------
    def onApplyButton(self):
        if self.state.segmenting:
            self.cancelRunning()
            return
        if self.state.blocked or self.offerDependencyInstall():
            return
        with slicer.util.tryWithErrorDisplay("The segmentation could not be started.", waitCursor=True):
            self.updateParameterNodeFromGUI()
            parameters = self.state.parameters
            volume = parameters.input_volume
            self.startJob(SEGMENT, self.logic.startSegmentation(
                volume, self.currentModelPath(), parameters.predict_options(),
                onFinished=self.onSegmentationFinished), volume)

    def startJob(self, kind, job, volume=None):
        self.state.start(kind, job, volume)
        self.ui.logTextEdit.clear()
        self._logShown = 0
        self.ui.progressBar.setValue(0)
        self.setStatus(f"{job.title} running...")
        self.timer.start()
        self.updateButtons()

    def cancelRunning(self):
        self.state.cancel()
        self.updateButtons()

    def onTimer(self):
        job = self.state.job
        if job is not None and job.running:
            job.poll()
            self.showJobProgress()
        if self.probe is not None:
            self._probeLines += [line.text for line in self.probe.read_lines()]
            if self.probe.finished:
                self.gpuInfo = parse_probe(self._probeLines)
                self.probe = None
                self.showDeviceWarning()
        if not self.state.running and self.probe is None:
            self.timer.stop()

    def showJobProgress(self):
        job = self.state.job
        if job is None:
            return
        if job.progress is not None:
            stage, done, total = job.progress
            self.ui.progressBar.setValue(int(100 * done / total) if total else 0)
            self.ui.progressBar.setFormat(f"{stage}: %p%")
        for line in job.log[self._logShown:]:
            self.appendLog(line)
        self._logShown = len(job.log)

    def appendLog(self, text):
        self.ui.logTextEdit.appendPlainText(text)

    def setStatus(self, text, warnings=()):
        """The status line, with the run's warnings in orange below it (the label is rich text)."""
        self.ui.statusLabel.text = status_html(text, warnings)

    def finishJob(self, job):
        self.showJobProgress()
        # Warnings of failed runs too: e.g. a GPU out-of-memory fallback before a crash.
        self.setStatus(f"{job.title}: {job.state.value} ({job.total_seconds:.1f} s)", job.warnings)
        if job.state is JobState.SUCCEEDED:
            self.ui.progressBar.setValue(100)
        elif job.state is JobState.FAILED:
            slicer.util.errorDisplay(f"{job.title} failed: {job.error}", detailedText=job.full_log())
        self.updateButtons()

    def onSegmentationFinished(self, job):
        """Called when the run ends, whichever module is shown then."""
        shown = self.state.segmentation_finished(job)  # records the segmentation in the parameter node
        self.finishJob(job)
        if shown is None:
            return
        self.showResult(shown)
        if shown.volume is not None:
            if shown.result.probability is not None:
                slicer.util.setSliceViewerLayers(background=shown.volume, foreground=shown.result.probability,
                                                 foregroundOpacity=0.4)
            else:
                slicer.util.setSliceViewerLayers(background=shown.volume)
        self.updateGUIFromParameterNode()  # the new segmentation, also while another module is shown

    def showResult(self, shown):
        """The lesion table and summary of a result (None: empty them)."""
        lesions = list(shown.result.lesions) if shown is not None else []
        table = self.ui.resultsTable
        table.setRowCount(len(lesions))
        for row, lesion in enumerate(lesions):
            for column, text in enumerate(lesion.row()):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        self.ui.resultsSummaryLabel.text = shown.result.summary if shown is not None else ""

    # -- review ---------------------------------------------------------------------------------
    def onLesionClicked(self, row, column):
        shown = self.state.result()
        if shown is not None and 0 <= row < len(shown.result.lesions):
            self.logic.jumpToLesion(shown.result.lesions[row], shown.volume)

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
        with slicer.util.tryWithErrorDisplay("The case was not exported.", waitCursor=True):
            case = self.logic.exportForRetraining(parameters.segmentation, parameters.input_volume,
                                                  parameters.text("ExportFolder"), parameters.text("Reviewer"))
            self.appendLog(f"Exported {case.case_id} to {case.folder} "
                           f"({exported_case_count(case.folder)} case(s) in the folder).")
            self.setStatus(f"Exported {case.case_id}")

    def onFineTune(self):
        if self.state.fine_tuning:
            self.cancelRunning()
            return
        if self.state.blocked or self.offerDependencyInstall():
            return
        self.updateParameterNodeFromGUI()
        parameters = self.state.parameters
        folder = parameters.text("ExportFolder")
        replayData = parameters.text("ReplayData")
        count = exported_case_count(folder)
        question = None
        with slicer.util.tryWithErrorDisplay("Fine-tuning could not be started.", waitCursor=True):
            question = fine_tune_question(  # the budget and its expected duration, before hours of CPU
                read_manifest(self.currentModelPath()), folder, count, parameters.epochs,
                parameters.predict_options().device, replayData, self.gpuInfo.cuda if self.gpuInfo else None)
        if question is None or not slicer.util.confirmOkCancelDisplay(question):
            return
        with slicer.util.tryWithErrorDisplay("Fine-tuning could not be started.", waitCursor=True):
            self.startJob(FINE_TUNE, self.logic.startFineTuning(
                self.currentModelPath(), folder, parameters.epochs, parameters.predict_options().device,
                onFinished=self.onFineTuneFinished, replayData=replayData))

    def onFineTuneFinished(self, job):
        self.finishJob(job)
        if job.state is JobState.SUCCEEDED:
            self.refreshModels(select=job.result.path)
            slicer.util.infoDisplay(f"The fine-tuned model {job.result.label} was added and selected.")

    # -- dependencies ---------------------------------------------------------------------------
    def refreshDependencies(self):
        """Check installed versions against what the installer asks for, and say what is wrong."""
        if self.state.blocked:
            self.dependencyProblems = []
            self.ui.dependencyStatusLabel.text = "Nothing is installed into this Slicer: see the message at the top."
        else:
            self.dependencyProblems = install.check()
            self.ui.dependencyStatusLabel.text = (
                f"Missing or too old: {install.describe(self.dependencyProblems)}" if self.dependencyProblems
                else "All dependencies are installed.")
            if self.dependencyProblems:
                self.ui.dependenciesCollapsibleButton.collapsed = False
        self.updateButtons()

    def offerDependencyInstall(self):
        """True if dependencies are missing or too old (the user was offered to install them)."""
        self.refreshDependencies()
        if not self.dependencyProblems:
            return False
        if slicer.util.confirmOkCancelDisplay(
                f"BATseg needs: {install.describe(self.dependencyProblems)}. Install now?"):
            self.onInstallDependencies(confirmed=True)
        return True

    def onInstallDependencies(self, checked=False, confirmed=False):
        self.refreshDependencies()
        if self.state.blocked or not self.dependencyProblems:
            return
        if not confirmed and not slicer.util.confirmOkCancelDisplay(
                f"Install or update {install.describe(self.dependencyProblems)} in Slicer's Python? This downloads "
                "packages (torch: the build for this computer's GPU, through the PyTorch extension's light-the-torch) "
                "and can take several minutes. Slicer's own SimpleITK, numpy and requests are kept."):
            return
        try:
            with slicer.util.tryWithErrorDisplay("The dependencies could not be installed.", waitCursor=True):
                if install.install_dependencies(self.appendLog):
                    if slicer.util.confirmYesNoDisplay("Dependencies installed. Restart Slicer now to use them?"):
                        slicer.util.restart()
        finally:
            self.refreshDependencies()  # what is still missing, also after a failed pip call


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
