"""BATsegLogic: MRML in, MRML out; the network always runs in a child process on files.

Segmentation run (`process` / `startSegmentation`):
1. the input volume is written to a private temporary folder (storage node, no scene change),
   with the contrast facts of its DICOM header beside it when it came from DICOM
   (dicom_sidecar.py: the engine warns when the scan is not T1-weighted);
2. `python -m batseg predict ...` runs as a child process (`jobs.Job`, `process.ChildProcess`);
3. only after it exits with status 0 are its outputs read, checked to lie on the input grid,
   and added to the scene: one segmentation node with the four tumour segments (empty ones
   included), a table node with one row per lesion, optionally a tumour-probability volume;
   all placed under the input's study in the subject hierarchy;
4. the temporary folder is removed in every outcome; it is a run folder (run_folders.py) that
   names this Slicer and the child, so that if Slicer crashes during the run the next start-up
   stops the orphaned child and removes the folder.
A cancelled or failed run adds nothing to the scene. The result also carries the run's
warnings (`Job.warnings`, without the model's disclaimer, which the panel always shows), the
minimum lesion volume applied and the case's overall type, so scripts and tests see what the
panel shows.

Fine-tuning (`startFineTuning`) runs `python -m batseg train --finetune-from ...` on an export
folder (see export.py), optionally with the model's original training data to replay
(`--replay-data`), and adds the new model file to the user models folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

import slicer
import vtk

from batseg.errors import BATsegError
from batseg.postprocess_settings import (
    recommended_min_enhancement, recommended_min_tumour_probability, recommended_min_volume,
)

from BATsegSlicerLib import commands
from BATsegSlicerLib.ai_output import remember_ai_output
from BATsegSlicerLib.commands import PredictOptions
from BATsegSlicerLib.dicom_sidecar import write_sidecar
from BATsegSlicerLib.export import ExportedCase, export_case
from BATsegSlicerLib.jobs import Job, JobState
from BATsegSlicerLib.lesion_report import Lesion, fill_table_node, lesions_from_report, read_report
from BATsegSlicerLib.models import ModelEntry, ModelLibrary, model_disclaimer, read_manifest, verify
from BATsegSlicerLib.parameter_node import Parameters, parameter_node
from BATsegSlicerLib.probability import create_probability_volume, tumour_probability
from BATsegSlicerLib.process import ChildProcess
from BATsegSlicerLib.run_folders import new_run_folder, record_child
from BATsegSlicerLib.run_summary import NO_TYPE, results_summary
from BATsegSlicerLib.segmentation import create_tumour_segmentation, place_beside, show_in_3d
from BATsegSlicerLib.storage import read_array_on_grid, write_volume

try:  # the application's base class; headless (slicer-core) it does not exist
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as _LogicBase
except ImportError:
    _LogicBase = object

CASE = "input"  # fixed file stem: no volume name (possibly a patient name) reaches the disk


@dataclass
class SegmentationResult:
    """The nodes a successful run added to the scene, and the report behind them."""

    segmentation: "slicer.vtkMRMLSegmentationNode"
    table: "slicer.vtkMRMLTableNode"
    probability: "slicer.vtkMRMLScalarVolumeNode | None"
    lesions: list[Lesion] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # the run's warnings, each once
    min_volume_mm3: float | None = None  # smallest lesion kept; None: postprocessing was off
    min_tumour_probability: float = 0.0  # least mean tumour probability of a kept lesion; 0: none
    min_enhancement: float = 0.0  # least median signal of a kept lesion over the cord's; 0: none applied

    @property
    def overall_type_name(self) -> str:
        """The case's type with the largest tumour volume ('' when there is no tumour)."""
        name = str(self.report.get("overall_type_name") or "")
        return "" if name.strip().lower() == NO_TYPE else name

    @property
    def summary(self) -> str:
        """The results line the panel shows (see run_summary.results_summary)."""
        return results_summary(len(self.lesions), self.overall_type_name, self.min_volume_mm3,
                               self.min_tumour_probability, self.min_enhancement)


def _applied_min_enhancement(manifest: dict[str, Any], report: dict[str, Any], postprocess: bool) -> float:
    """The model's minimum enhancement if the engine applied it, else 0. It judges lesions against the
    cord's signal: without one (the report's cord_signal null, e.g. no cord found) it removed nothing,
    and naming it would claim a filter that did not run."""
    if not postprocess or report.get("cord_signal") is None:
        return 0.0
    return recommended_min_enhancement(manifest)


class BATsegLogic(_LogicBase):
    """All work of the module without any widget (usable from scripts and tests)."""

    def __init__(self, userModelsDir: str | None = None, python: str | None = None) -> None:
        if _LogicBase is not object:
            _LogicBase.__init__(self)
        if userModelsDir is None:
            from BATsegSlicerLib.models import default_user_models_dir

            userModelsDir = default_user_models_dir()
        self.library = ModelLibrary(userModelsDir)
        self.python = python

    # -- parameters and models -------------------------------------------------------------
    def getParameterNode(self) -> "slicer.vtkMRMLScriptedModuleNode":
        return parameter_node(slicer.mrmlScene)

    def parameters(self) -> Parameters:
        return Parameters(self.getParameterNode())

    def models(self) -> tuple[list[ModelEntry], list[str]]:
        """Usable models (shipped first) and one line per unusable model file."""
        return self.library.entries()

    def addModel(self, path: str) -> ModelEntry:
        """Verify a model file (manifest + checksum) and add it to the user models folder."""
        return self.library.add(path)

    def pythonExecutable(self) -> str:
        """The interpreter of the child processes (PythonSlicer in the application)."""
        return self.python or commands.python_executable()

    # -- segmentation ----------------------------------------------------------------------
    def process(self, inputVolume, modelPath: str, options: PredictOptions = PredictOptions(),
                waitForCompletion: bool = True, timeout: float | None = None,
                onEvent: Callable[[dict], None] | None = None,
                onFinished: Callable[[Job], None] | None = None) -> Job:
        """Segment `inputVolume`; with `waitForCompletion` return only when the job has ended."""
        job = self.startSegmentation(inputVolume, modelPath, options, onEvent, onFinished)
        if waitForCompletion:
            job.wait(timeout)
        return job

    def startSegmentation(self, inputVolume, modelPath: str, options: PredictOptions = PredictOptions(),
                          onEvent: Callable[[dict], None] | None = None,
                          onFinished: Callable[[Job], None] | None = None) -> Job:
        """Start the child process; poll the returned Job from the main thread."""
        _check_input_volume(inputVolume)
        manifest = read_manifest(modelPath)
        workdir = new_run_folder()
        try:
            input_path = os.path.join(workdir, "in", CASE + ".nii.gz")
            output_dir = os.path.join(workdir, "out")
            os.makedirs(os.path.dirname(input_path))
            os.makedirs(output_dir)
            write_volume(inputVolume, input_path)
            write_sidecar(inputVolume, input_path)  # the DICOM contrast facts, for the engine's T1 check
            command = commands.build_predict_command(self.pythonExecutable(), input_path, output_dir, modelPath, options)
            process = ChildProcess(command, env=commands.child_environment(), cwd=workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        job = Job(
            "BATseg segmentation", process, on_event=onEvent,
            on_success=lambda finished: self._load_segmentation(inputVolume, output_dir, manifest, options,
                                                                finished.warnings),
            on_finished=onFinished, cleanup=lambda: shutil.rmtree(workdir, ignore_errors=True),
            shown_elsewhere=[model_disclaimer(manifest)],  # printed by the engine on every run
        )
        return _start(job, process, workdir)

    def _load_segmentation(self, volume, output_dir: str, manifest: dict[str, Any],
                           options: PredictOptions, warnings: list[str]) -> SegmentationResult:
        """Read the child's outputs (all checks first) and only then add nodes to the scene."""
        if volume.GetScene() is None:
            raise BATsegError("the input volume was removed from the scene during the run: nothing was added")
        labels = read_array_on_grid(os.path.join(output_dir, CASE + ".nii.gz"), volume)
        report = read_report(os.path.join(output_dir, CASE + ".report.json"))
        lesions = lesions_from_report(report)
        probability = None
        if options.save_probabilities:
            probability = tumour_probability(
                read_array_on_grid(os.path.join(output_dir, CASE + ".probabilities.nii.gz"), volume, vector=True))
        scene = volume.GetScene()
        base = f"{volume.GetName()} BATseg"
        segmentation = create_tumour_segmentation(scene, volume, labels, base)
        ai_output = remember_ai_output(segmentation, volume, labels, manifest)
        segmentation.SetAttribute("BATseg.Report", json.dumps(report))
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(base + " lesions"))
        fill_table_node(table, lesions)
        nodes = [segmentation, table, ai_output]
        probability_node = None
        if probability is not None:
            probability_node = create_probability_volume(scene, volume, probability, base + " tumour probability")
            nodes.append(probability_node)
        for node in nodes:
            place_beside(node, volume)
        show_in_3d(segmentation)
        # The engine applies the model's minimums: the module never passes --min-volume,
        # --min-tumour-probability or --min-enhancement.
        min_volume = recommended_min_volume(manifest) if options.postprocess else None
        least = recommended_min_tumour_probability(manifest) if options.postprocess else 0.0
        return SegmentationResult(segmentation, table, probability_node, lesions, report, list(warnings), min_volume,
                                  least, _applied_min_enhancement(manifest, report, options.postprocess))

    # -- review ----------------------------------------------------------------------------
    def jumpToLesion(self, lesion: Lesion, volumeNode=None) -> tuple[float, float, float]:
        """Centre all slice views on the lesion's centroid; returns the world RAS point used."""
        point = list(lesion.centroid_ras)
        transform = volumeNode.GetParentTransformNode() if volumeNode is not None else None
        if transform is not None:  # report coordinates are the volume's own RAS
            to_world = vtk.vtkGeneralTransform()
            transform.GetTransformToWorld(to_world)
            point = list(to_world.TransformPoint(point))
        slicer.vtkMRMLSliceNode.JumpAllSlices(slicer.mrmlScene, *point, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return tuple(point)

    def showIn3D(self, segmentationNode) -> None:
        show_in_3d(segmentationNode)

    def exportForRetraining(self, segmentationNode, volumeNode, exportDir: str, reviewer: str = "") -> ExportedCase:
        """Export the reviewed segmentation as a new case of the export folder (see export.py)."""
        if segmentationNode is None or volumeNode is None:
            raise BATsegError("select the input volume and its segmentation before exporting")
        if not exportDir:
            raise BATsegError("choose an export folder first")
        return export_case(segmentationNode, volumeNode, exportDir, reviewer)

    # -- fine-tuning -----------------------------------------------------------------------
    def startFineTuning(self, modelPath: str, exportDir: str, epochs: int | None = None, device: str = "auto",
                        onEvent: Callable[[dict], None] | None = None,
                        onFinished: Callable[[Job], None] | None = None, replayData: str = "") -> Job:
        """Fine-tune `modelPath` on the exported cases into a new model in the user models folder.

        `replayData`: optional folder of the model's original training cases (nnU-Net raw layout)
        that the engine mixes in; empty lets the engine find them itself (see batseg/training/replay.py).
        """
        manifest = read_manifest(modelPath)
        cases = exported_case_count(exportDir)
        if cases < 1:
            raise BATsegError(f"{exportDir or 'the export folder'} holds no exported case: export reviewed cases first")
        _check_replay_data(replayData)
        output = self.library.new_model_path(str(manifest.get("name") or "batseg"))
        command = commands.build_train_command(self.pythonExecutable(), modelPath, exportDir, output, epochs, device,
                                               replayData)
        process = ChildProcess(command, env=commands.child_environment())
        record = new_run_folder()  # only the owner record: a crashed Slicer's child is stopped at start-up

        def cleanup() -> None:
            shutil.rmtree(record, ignore_errors=True)
            if job.state is not JobState.SUCCEEDED and os.path.exists(output):
                os.remove(output)  # a cancelled or failed run must not leave a broken model behind

        def load_model(finished: Job) -> ModelEntry:
            if not os.path.isfile(output):
                raise BATsegError("fine-tuning ended without writing the new model file: see the log")
            return ModelEntry(output, verify(output), shipped=False)

        job = Job("BATseg fine-tuning", process, on_event=onEvent, on_success=load_model,
                  on_finished=onFinished, cleanup=cleanup)
        return _start(job, process, record)


def _start(job: Job, process: ChildProcess, run_folder: str) -> Job:
    """Start a job's child; record its pid in the run folder once it runs (so a later Slicer can stop
    it if this one crashes), or remove the folder if the child could not start."""
    try:
        job.start()
    except BaseException:
        shutil.rmtree(run_folder, ignore_errors=True)
        raise
    record_child(run_folder, process.pid)
    return job


def exported_case_count(export_dir: str) -> int:
    """numTraining of an export folder's dataset.json (0 if there is none)."""
    path = os.path.join(export_dir or "", "dataset.json")
    if not export_dir or not os.path.isfile(path):
        return 0
    try:
        with open(path, encoding="utf-8") as handle:
            return int(json.load(handle).get("numTraining", 0))
    except (OSError, ValueError, TypeError):
        return 0


def _check_replay_data(folder: str) -> None:
    """Refuse a given replay folder that is not an nnU-Net raw dataset, before hours of training
    start (the engine checks the cases themselves; this catches a wrong folder at once)."""
    if not folder:
        return
    if not os.path.isdir(folder):
        raise BATsegError(f"the original training data folder {folder} does not exist")
    if not os.path.isdir(os.path.join(folder, "imagesTr")):
        raise BATsegError(f"the original training data folder {folder} holds no imagesTr folder: "
                          "choose an nnU-Net raw dataset folder (imagesTr, labelsTr, dataset.json)")


def _check_input_volume(volume) -> None:
    if volume is None or volume.GetImageData() is None:
        raise BATsegError("select an input volume that holds an image")
    if volume.IsA("vtkMRMLLabelMapVolumeNode") or volume.GetImageData().GetNumberOfScalarComponents() != 1:
        raise BATsegError(f"{volume.GetName()} is not a grey-value image: select the T1 Gd volume")
    if min(volume.GetImageData().GetDimensions()) < 2:
        raise BATsegError(f"{volume.GetName()} is not a 3-D volume: select a 3-D T1 Gd series")
    if volume.GetScene() is None:
        raise BATsegError("the input volume is not in the scene")
