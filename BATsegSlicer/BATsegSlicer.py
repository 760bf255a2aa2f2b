"""BATsegSlicer: spinal cord tumour segmentation on sagittal T1 Gd MRI (3D Slicer module).

This file holds only what needs the application: the Module (title, help, sample data), the
Widget (binds the panel to the parameter node, calls the Logic, shows progress) and the
self-test that drives the Widget in a real Slicer. All work is in BATsegSlicerLib (Logic) and
the engine `batseg`, which runs in a child process: never torch in Slicer's own process.
"""

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

from BATsegSlicerLib import install
from BATsegSlicerLib.commands import DEVICES
from BATsegSlicerLib.gpu import parse_probe, probe_process
from BATsegSlicerLib.jobs import JobState
from BATsegSlicerLib.lesion_report import TABLE_HEADERS
from BATsegSlicerLib.logic import BATsegLogic, exported_case_count
from BATsegSlicerLib.parameter_node import Parameters
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
            "the model on them. " + DISCLAIMER)
        self.parent.acknowledgementText = (
            "Method: Song et al., BATseg: boundary-aware multiclass spinal cord tumor segmentation on "
            "3D MRI. Built on nnU-Net (Isensee et al.) and 3D Slicer.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Register the shipped synthetic sample cases with the Sample Data module."""
    import logging

    from batseg.errors import BATsegError
    from BATsegSlicerLib.sample_data import register_sample_data

    try:
        register_sample_data()
    except BATsegError as error:  # a broken sample list must not break Slicer's start-up
        logging.warning(f"BATseg sample data not registered: {error}")


class BATsegSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: input, model, device, options, run/cancel, results, correction, export."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUI = False
        self.job = None
        self.jobKind = ""
        self.probe = None
        self.gpuInfo = None
        self.lesions = []
        self.modelEntries = []
        self._logShown = 0

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BATsegSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BATsegLogic()

        self.ui.disclaimerLabel.text = DISCLAIMER
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
        self.refreshModels()
        self.refreshDependencies()
        self.initializeParameterNode()
        self.startGpuProbe()

    def cleanup(self):
        """Called when the application closes: stop any child process."""
        self.cancelRunning()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.cancelRunning()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        parameters = Parameters(self._parameterNode)
        if parameters.input_volume is None:
            volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if volume is not None and not volume.IsA("vtkMRMLLabelMapVolumeNode"):
                parameters.input_volume = volume

    def setParameterNode(self, node):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = node
        if node is not None:
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    # -- parameter node <-> GUI ----------------------------------------------------------------
    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            parameters = Parameters(self._parameterNode)
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
        self.updateButtons()

    def updateParameterNodeFromGUI(self, *args):
        if self._parameterNode is None or self._updatingGUI:
            return
        wasModified = self._parameterNode.StartModify()
        parameters = Parameters(self._parameterNode)
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
        self._parameterNode.EndModify(wasModified)

    def updateButtons(self):
        running = self.job is not None and self.job.running
        segmenting = running and self.jobKind == "segment"
        tuning = running and self.jobKind == "finetune"
        parameters = Parameters(self._parameterNode) if self._parameterNode is not None else None
        hasInput = parameters is not None and parameters.input_volume is not None
        hasModel = bool(self.currentModelPath())
        hasSegmentation = parameters is not None and parameters.segmentation is not None
        self.ui.applyButton.text = "Cancel" if segmenting else "Segment"
        self.ui.applyButton.enabled = segmenting or (not running and hasInput and hasModel)
        self.ui.fineTuneButton.text = "Cancel fine-tuning" if tuning else "Fine-tune on exported cases"
        self.ui.fineTuneButton.enabled = tuning or (not running and hasModel)
        for button in (self.ui.show3DButton, self.ui.correctButton, self.ui.exportButton):
            button.enabled = hasSegmentation and not running

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
        target = select or (Parameters(self._parameterNode).text("Model") if self._parameterNode else "")
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
        if self.job is not None and self.job.running:
            self.cancelRunning()
            return
        if self.offerDependencyInstall():
            return
        with slicer.util.tryWithErrorDisplay("The segmentation could not be started.", waitCursor=True):
            self.updateParameterNodeFromGUI()
            parameters = Parameters(self._parameterNode)
            self.startJob("segment", self.logic.startSegmentation(
                parameters.input_volume, self.currentModelPath(), parameters.predict_options(),
                onFinished=self.onSegmentationFinished))

    def startJob(self, kind, job):
        self.job = job
        self.jobKind = kind
        self.ui.logTextEdit.clear()
        self._logShown = 0
        self.ui.progressBar.setValue(0)
        self.setStatus(f"{job.title} running...")
        self.timer.start()
        self.updateButtons()

    def cancelRunning(self):
        if self.job is not None and self.job.running:
            self.job.cancel()
        if self.probe is not None and not self.probe.finished:
            self.probe.cancel()
        self.updateButtons()

    def onTimer(self):
        if self.job is not None and self.job.running:
            self.job.poll()
            self.showJobProgress()
        if self.probe is not None:
            self._probeLines += [line.text for line in self.probe.read_lines()]
            if self.probe.finished:
                self.gpuInfo = parse_probe(self._probeLines)
                self.probe = None
                self.showDeviceWarning()
        if (self.job is None or not self.job.running) and self.probe is None:
            self.timer.stop()

    def showJobProgress(self):
        if self.job is None:
            return
        if self.job.progress is not None:
            stage, done, total = self.job.progress
            self.ui.progressBar.setValue(int(100 * done / total) if total else 0)
            self.ui.progressBar.setFormat(f"{stage}: %p%")
        for line in self.job.log[self._logShown:]:
            self.appendLog(line)
        self._logShown = len(self.job.log)

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
        self.finishJob(job)
        if job.state is not JobState.SUCCEEDED:
            return
        result = job.result
        parameters = Parameters(self._parameterNode)
        parameters.segmentation = result.segmentation
        self.showLesions(result.lesions, result.summary)
        volume = parameters.input_volume
        if result.probability is not None:
            slicer.util.setSliceViewerLayers(background=volume, foreground=result.probability,
                                             foregroundOpacity=0.4)
        else:
            slicer.util.setSliceViewerLayers(background=volume)
        self.updateButtons()

    def showLesions(self, lesions, summary):
        self.lesions = list(lesions)
        table = self.ui.resultsTable
        table.setRowCount(len(self.lesions))
        for row, lesion in enumerate(self.lesions):
            for column, text in enumerate(lesion.row()):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        self.ui.resultsSummaryLabel.text = summary

    # -- review ---------------------------------------------------------------------------------
    def onLesionClicked(self, row, column):
        if 0 <= row < len(self.lesions):
            self.logic.jumpToLesion(self.lesions[row], Parameters(self._parameterNode).input_volume)

    def onShow3D(self):
        segmentation = Parameters(self._parameterNode).segmentation
        self.logic.showIn3D(segmentation)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None and layoutManager.threeDWidget(0) is not None:
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def onCorrect(self):
        """Open the Segment Editor with this segmentation and volume selected."""
        parameters = Parameters(self._parameterNode)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(parameters.segmentation)
        if hasattr(editor, "setSourceVolumeNode"):  # Slicer >= 5.2
            editor.setSourceVolumeNode(parameters.input_volume)
        else:
            editor.setMasterVolumeNode(parameters.input_volume)

    def onExport(self):
        self.updateParameterNodeFromGUI()
        parameters = Parameters(self._parameterNode)
        with slicer.util.tryWithErrorDisplay("The case was not exported.", waitCursor=True):
            case = self.logic.exportForRetraining(parameters.segmentation, parameters.input_volume,
                                                  parameters.text("ExportFolder"), parameters.text("Reviewer"))
            self.appendLog(f"Exported {case.case_id} to {case.folder} "
                           f"({exported_case_count(case.folder)} case(s) in the folder).")
            self.setStatus(f"Exported {case.case_id}")

    def onFineTune(self):
        if self.job is not None and self.job.running:
            self.cancelRunning()
            return
        if self.offerDependencyInstall():
            return
        self.updateParameterNodeFromGUI()
        parameters = Parameters(self._parameterNode)
        folder = parameters.text("ExportFolder")
        replayData = parameters.text("ReplayData")
        count = exported_case_count(folder)
        replay = f", mixed with the original training data in {replayData}," if replayData else ""
        if not slicer.util.confirmOkCancelDisplay(
                f"Fine-tune the selected model on the {count} exported case(s) in {folder}{replay} for "
                f"{parameters.epochs} epochs? This can take hours on a CPU. The new model is added to the "
                "model list; the original is kept."):
            return
        with slicer.util.tryWithErrorDisplay("Fine-tuning could not be started.", waitCursor=True):
            self.startJob("finetune", self.logic.startFineTuning(
                self.currentModelPath(), folder, parameters.epochs, parameters.predict_options().device,
                onFinished=self.onFineTuneFinished, replayData=replayData))

    def onFineTuneFinished(self, job):
        self.finishJob(job)
        if job.state is JobState.SUCCEEDED:
            self.refreshModels(select=job.result.path)
            slicer.util.infoDisplay(f"The fine-tuned model {job.result.label} was added and selected.")

    # -- dependencies ---------------------------------------------------------------------------
    def refreshDependencies(self):
        missing = install.describe_missing()
        self.ui.dependencyStatusLabel.text = (f"Missing: {missing}" if missing else "All dependencies are installed.")
        self.ui.installButton.enabled = bool(missing)

    def offerDependencyInstall(self):
        """True if dependencies are missing (the user was offered to install them)."""
        missing = install.describe_missing()
        if not missing:
            return False
        if slicer.util.confirmOkCancelDisplay(f"BATseg needs {missing}. Install now?"):
            self.onInstallDependencies(confirmed=True)
        return True

    def onInstallDependencies(self, checked=False, confirmed=False):
        missing = install.describe_missing()
        if not missing:
            return
        if not confirmed and not slicer.util.confirmOkCancelDisplay(
                f"Install {missing} into Slicer's Python? This downloads packages (torch through the PyTorch "
                "extension) and can take several minutes. Slicer's own SimpleITK, numpy and requests are kept."):
            return
        with slicer.util.tryWithErrorDisplay("The dependencies could not be installed.", waitCursor=True):
            if install.install_dependencies(self.appendLog):
                self.refreshDependencies()
                if slicer.util.confirmYesNoDisplay("Dependencies installed. Restart Slicer now to use them?"):
                    slicer.util.restart()


class BATsegSlicerTest(ScriptedLoadableModuleTest):
    """Self-test in the real application: the panel, a run of the Logic, correction and export."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_panel()
        self.setUp()
        self.test_segment_and_export()

    def test_panel(self):
        """The panel shows the disclaimer, the device choices and a model list."""
        widget = slicer.modules.batsegslicer.widgetRepresentation().self()
        self.assertIn("not for clinical use", widget.ui.disclaimerLabel.text)
        self.assertEqual(widget.ui.deviceComboBox.count, len(DEVICES))
        self.assertEqual(widget.ui.resultsTable.columnCount, len(TABLE_HEADERS))
        widget.updateButtons()
        self.assertIsNone(widget.ui.inputVolumeSelector.currentNode())  # the scene was cleared
        self.assertFalse(widget.ui.applyButton.enabled)  # nothing to segment yet
        entry = widget.currentModelEntry()
        if entry is not None:  # the model's measured quality is shown where it is chosen
            self.assertIn(entry.held_out_summary, widget.ui.modelInfoLabel.text)

    def test_segment_and_export(self):
        """Segment a shipped sample with the shipped model through the panel, then export it."""
        import html
        import tempfile

        import SampleData

        from BATsegSlicerLib.sample_data import read_sample_cases

        widget = slicer.modules.batsegslicer.widgetRepresentation().self()
        entries = [e for e in widget.logic.models()[0] if e.shipped]
        cases = [c for c in read_sample_cases() if os.path.isfile(c.image)]
        if not entries or not cases or install.describe_missing():
            self.delayDisplay("Skipped: needs the shipped model, a sample case and the installed dependencies")
            return
        volume = SampleData.downloadSample(cases[0].name)
        if isinstance(volume, list):
            volume = volume[0]
        widget.ui.inputVolumeSelector.setCurrentNode(volume)
        widget.ui.deviceComboBox.setCurrentIndex(DEVICES.index("cpu"))
        widget.ui.applyButton.click()
        self.assertEqual(widget.ui.applyButton.text, "Cancel")  # Apply turned into Cancel while running
        while widget.job.running:
            slicer.app.processEvents()
            widget.onTimer()
        self.assertEqual(widget.job.state, JobState.SUCCEEDED, widget.job.full_log())
        segmentation = widget.ui.segmentationSelector.currentNode()
        self.assertIsNotNone(segmentation)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 4)
        self.assertEqual(widget.ui.resultsTable.rowCount, len(widget.lesions))
        self.assertEqual(widget.ui.resultsSummaryLabel.text, widget.job.result.summary)
        for warning in widget.job.result.warnings:
            self.assertIn(html.escape(warning), widget.ui.statusLabel.text)
        with tempfile.TemporaryDirectory() as folder:
            widget.ui.exportFolderPathLineEdit.currentPath = folder
            widget.ui.exportButton.click()
            self.assertEqual(exported_case_count(folder), 1)
        self.delayDisplay("BATseg self-test passed")
