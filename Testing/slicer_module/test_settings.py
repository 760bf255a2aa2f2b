"""Small parts of the module: parameter node (and its saving with the scene), command lines and
child environment, dependency planning, sample-data registration arguments, GPU probe, lesion
report parsing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
import slicer

from batseg.errors import BATsegError
from BATsegSlicerLib import commands, gpu, install, lesion_report, sample_data
from BATsegSlicerLib.commands import PredictOptions
from BATsegSlicerLib.parameter_node import Parameters, parameter_node
from conftest import MODULE_DIR


def test_parameter_node_is_a_singleton_with_defaults(mrml, volume):
    node = parameter_node(mrml.scene)
    assert parameter_node(mrml.scene) is node  # the same node, as ScriptedLoadableModuleLogic would return
    assert node.GetSingletonTag() == "BATsegSlicer" and node.GetAttribute("ModuleName") == "BATsegSlicer"
    parameters = Parameters(node)
    assert parameters.predict_options() == PredictOptions()  # auto, no TTA, postprocessing on
    parameters.input_volume = volume
    parameters.set_flag("TTA", True)
    parameters.set_text("Device", "cuda")
    parameters.epochs = 7
    again = Parameters(parameter_node(mrml.scene))
    assert again.input_volume is volume
    assert again.predict_options() == PredictOptions(device="cuda", tta=True)
    assert again.epochs == 7


def test_original_training_data_folder_is_saved_with_the_scene(mrml):
    parameters = Parameters(parameter_node(mrml.scene))
    assert parameters.text("ReplayData") == ""  # default: the engine looks for the data itself
    parameters.set_text("ReplayData", "/data/Dataset501_Original")
    reloaded = _saved_and_reloaded(mrml.scene)
    try:
        assert Parameters(parameter_node(reloaded)).text("ReplayData") == "/data/Dataset501_Original"
    finally:
        reloaded.Clear(1)


def test_segmenting_around_the_cord_is_on_by_default_and_saved_with_the_scene(mrml):
    parameters = Parameters(parameter_node(mrml.scene))
    assert parameters.flag("CropToCord") and parameters.predict_options().crop_to_cord  # the engine's default
    assert "--no-crop" not in commands.build_predict_command("py", "i", "o", "m", parameters.predict_options())
    parameters.set_flag("CropToCord", False)  # the checkbox unchecked: segment the whole volume
    assert parameters.predict_options() == PredictOptions(crop_to_cord=False)
    reloaded = _saved_and_reloaded(mrml.scene)
    try:
        options = Parameters(parameter_node(reloaded)).predict_options()
        assert options.crop_to_cord is False
        assert commands.build_predict_command("py", "i", "o", "m", options)[-2:] == [
            "--no-crop", "--no-one-type-per-lesion"]
    finally:
        reloaded.Clear(1)


def test_predict_and_train_command_lines_follow_the_engine_contract():
    options = PredictOptions(device="cpu", tta=True, postprocess=False, crop_to_cord=False, one_type_per_lesion=True,
                             save_probabilities=True)
    assert commands.build_predict_command("py", "in.nii.gz", "out", "m.batseg", options) == [
        "py", "-m", "batseg", "predict", "-i", "in.nii.gz", "-o", "out", "--model", "m.batseg", "--device", "cpu",
        "--progress", "json", "--tta", "--no-postprocess", "--no-crop", "--one-type-per-lesion",
        "--save-probabilities"]
    # Defaults add nothing but the explicit one-type choice: the crop around the cord is the engine's default.
    assert commands.build_predict_command("py", "i", "o", "m", PredictOptions())[-5:] == [
        "--device", "auto", "--progress", "json", "--no-one-type-per-lesion"]
    assert commands.build_train_command("py", "m.batseg", "data", "new.batseg", epochs=5) == [
        "py", "-m", "batseg", "train", "--finetune-from", "m.batseg", "--data", "data", "--output", "new.batseg",
        "--progress", "json", "--device", "auto", "--epochs", "5"]
    assert commands.build_train_command("py", "m.batseg", "data", "new.batseg", replay_data="old data")[-2:] == [
        "--replay-data", "old data"]
    assert "--replay-data" not in commands.build_train_command("py", "m.batseg", "data", "new.batseg", replay_data="")
    with pytest.raises(BATsegError):
        PredictOptions(device="gpu")
    with pytest.raises(BATsegError):
        commands.build_train_command("py", "m", "d", "o", epochs=0)


def test_command_lines_are_accepted_by_the_engines_own_parser():
    """The module's command lines parse with batseg's argparse parser (no torch is imported)."""
    from batseg.cli import build_parser

    parser = build_parser()
    options = PredictOptions(device="cuda", tta=True, postprocess=False, crop_to_cord=False, one_type_per_lesion=True,
                             save_probabilities=True)
    predict = parser.parse_args(commands.build_predict_command("py", "in.nii.gz", "out", "m.batseg", options)[3:])
    assert (predict.command, predict.output, predict.model, predict.device, predict.progress) == (
        "predict", "out", "m.batseg", "cuda", "json")
    assert predict.tta and predict.no_postprocess and predict.one_type_per_lesion and predict.save_probabilities
    assert predict.no_crop
    plain = parser.parse_args(commands.build_predict_command("py", "in.nii.gz", "out", "m.batseg", PredictOptions())[3:])
    assert plain.one_type_per_lesion is False  # explicit, so the model's own choice does not override the panel
    assert plain.no_crop is False  # the crop around the cord: the engine's default
    train = parser.parse_args(commands.build_train_command("py", "m.batseg", "data", "new.batseg", 3, "cpu")[3:])
    assert (train.command, str(train.finetune_from), str(train.data), str(train.output), train.epochs,
            train.device, train.progress) == ("train", "m.batseg", "data", "new.batseg", 3, "cpu", "json")
    assert train.replay_data is None and not train.no_replay  # no folder given: the engine finds the data itself
    replay = parser.parse_args(commands.build_train_command("py", "m.batseg", "data", "new.batseg", 3, "cpu",
                                                            "/data/Dataset501_Original")[3:])
    assert str(replay.replay_data) == "/data/Dataset501_Original" and str(replay.finetune_from) == "m.batseg"


def test_child_imports_the_engine_from_the_module_folder():
    # -S: no site-packages, so `batseg` can only come from the PYTHONPATH the module sets.
    env = commands.child_environment({"PATH": "/usr/bin:/bin"})
    output = subprocess.run([sys.executable, "-S", "-c", "import batseg.progress, batseg; print(batseg.__file__)"],
                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert output.startswith(commands.MODULE_DIR)
    assert env["PYTHONUNBUFFERED"] == "1"


def test_dependency_plan_never_touches_protected_packages():
    requires = ["torch!=2.9.*,>=2.1.2", "acvl-utils<0.3,>=0.2.6", "numpy>=1.24", "SimpleITK>=2.2.1", "requests",
                "timm", "tqdm", "dynamic-network-architectures<0.5,>=0.4.4", 'pre-commit; extra == "dev"',
                'pandas; python_version >= "3.9"', "graphviz"]
    versions = {"nnunetv2": "2.8.1", "dynamic-network-architectures": "0.4.4", "graphviz": "0.20", "torch": "2.5.1",
                "SimpleITK": "2.1.0", "numpy": "1.26.4", "requests": "2.32.3", "safetensors": "0.4.5",
                "scipy": "1.14.1", "onnxruntime": "1.20.0"}
    problems = install.check(versions.get, lambda name: requires if name == "nnunetv2" else [])
    constraints = install.constraints_text({"SimpleITK": "2.4.0", "numpy": "1.26.4", "requests": None}.get)
    assert constraints == "SimpleITK==2.4.0\nnumpy==1.26.4\n"
    # Slicer's SimpleITK is too old for nnunetv2: reported, never installed; timm/torchvision never.
    assert install.pip_calls(problems, "c.txt") == [["-c", "c.txt", "psutil", "acvl-utils<0.3,>=0.2.6", "tqdm",
                                                     "pandas"]]
    simpleitk = next(p for p in problems if p.name == "SimpleITK")
    assert simpleitk.protected and simpleitk.describe().startswith("SimpleITK 2.1.0 (needs >=2.2.1)")


def test_sample_data_registration_arguments(tmp_path):
    folder = tmp_path / "SampleData"
    folder.mkdir()
    (folder / "case1.nii.gz").write_bytes(b"image")
    (folder / "case1_label.nii.gz").write_bytes(b"label")
    (folder / "case1.png").write_bytes(b"png")
    entries = [{"name": "BATseg phantom ependymoma", "image": "case1.nii.gz", "label": "case1_label.nii.gz",
                "image_sha256": hashlib.sha256(b"image").hexdigest(),
                "label_sha256": hashlib.sha256(b"label").hexdigest(),
                "tumour_type": "ependymoma", "thumbnail": "case1.png"}]
    (folder / "sample_data.json").write_text(json.dumps(entries))
    cases = sample_data.read_sample_cases(str(folder / "sample_data.json"))
    arguments = sample_data.registration_arguments(cases[0])
    assert arguments["uris"] == [(folder / "case1.nii.gz").as_uri(), (folder / "case1_label.nii.gz").as_uri()]
    assert arguments["checksums"] == [f"SHA256:{hashlib.sha256(b'image').hexdigest()}",
                                      f"SHA256:{hashlib.sha256(b'label').hexdigest()}"]
    assert arguments["loadFileTypes"] == ["VolumeFile", "SegmentationFile"]
    assert "loadFileType" not in arguments  # the deprecated spelling
    assert arguments["thumbnailFileName"] == str(folder / "case1.png")
    assert "not for clinical use" in arguments["category"]
    assert sample_data.read_sample_cases(str(tmp_path / "missing.json")) == []


def test_gpu_probe_answers_without_importing_torch_here():
    process = gpu.probe_process(sys.executable)
    process.start()
    lines = []
    deadline = time.monotonic() + 120
    while not process.finished and time.monotonic() < deadline:
        lines += [line.text for line in process.read_lines()]
        time.sleep(0.05)
    lines += [line.text for line in process.read_lines()]
    info = gpu.parse_probe(lines)
    try:
        import torch  # the environment's truth, to compare with the child's answer
    except ImportError:
        assert not info.torch
    else:
        assert info.torch and info.cuda == torch.cuda.is_available()


def test_gpu_warnings():
    low = gpu.GpuInfo(torch=True, cuda=True, name="Small GPU", free_mib=2048, total_mib=4096)
    assert "only 2048 MiB free" in low.warning("auto")
    assert low.warning("cpu") is None
    assert gpu.GpuInfo(torch=True, cuda=True, name="Big", free_mib=40000, total_mib=80000).warning("cuda") is None
    assert "no CUDA GPU is available" in gpu.GpuInfo(torch=True, cuda=False).warning("cuda")
    assert "not installed" in gpu.GpuInfo(torch=False, cuda=False).warning("auto")


def test_lesion_report_accepts_both_field_spellings():
    report = {"lesions": [
        {"id": 1, "type_name": "Ependymoma", "type_probability": 0.734, "tumour_probability": 0.912,
         "enhancement": 1.834, "volume_cm3": 2.5,
         "extent_mm": {"left_right": 9.9, "anterior_posterior": 12.0, "superior_inferior": 30.25},
         "slice_range": [4, 7], "centroid_ras": [1, 2, 3]},
        {"id": 2, "type_name": "Astrocytoma", "type_probability": None, "enhancement": None, "volume_cm3": 0.5,
         "extent_mm": {}, "slice_first": 2, "slice_last": 3, "centroid_ras_mm": [4, 5, 6]},
        {"id": 3, "type_name": "Meningioma", "volume_cm3": 0.5, "centroid_ras": [7, 8, 9]}]}  # an older report
    first, second, older = lesion_report.lesions_from_report(report)
    assert first.row() == ["1", "Ependymoma", "73 %", "91 %", "1.83x", "2.50", "9.9 x 12.0 x 30.2", "4-7"]
    assert second.slices == (2, 3) and second.centroid_ras == (4.0, 5.0, 6.0) and second.row()[2:5] == ["", "", ""]
    assert older.enhancement is None and older.row()[2:5] == ["", "", ""]
    assert len(first.row()) == len(lesion_report.TABLE_HEADERS)
    with pytest.raises(BATsegError, match="without a centroid"):
        lesion_report.lesions_from_report({"lesions": [{"id": 1}]})


def test_choosing_a_model_brings_its_one_type_recommendation(mrml):
    parameters = Parameters(parameter_node(mrml.scene))
    recommends = {"postprocessing": {"min_volume_mm3": 100.0, "one_type_per_lesion": True}}
    parameters.select_model("a.batseg", recommends)
    assert parameters.predict_options().one_type_per_lesion is True
    parameters.set_flag("OneTypePerLesion", False)  # the user unticks it
    parameters.select_model("a.batseg", recommends)  # same model again: the user's choice stays
    assert parameters.predict_options().one_type_per_lesion is False
    parameters.select_model("b.batseg", {})  # a model without a recommendation: off
    assert parameters.predict_options().one_type_per_lesion is False and parameters.text("Model") == "b.batseg"


def test_module_loads_before_its_dependencies_are_installed():
    """Slicer's Python has no scipy, torch, onnxruntime or nnU-Net until the module installs them
    (install.REQUIREMENTS); the module must load, to offer that install, without them."""
    script = (
        "import importlib.abc, sys\n"
        "class Missing(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('scipy', 'torch', 'onnxruntime', 'nnunetv2', 'dynamic_network_architectures'):\n"
        "            raise ImportError(f'{name} is not installed')\n"
        "sys.meta_path.insert(0, Missing())\n"
        f"sys.path.insert(0, {str(MODULE_DIR)!r})\n"
        "import BATsegSlicerLib, BATsegSlicerLib.models, BATsegSlicerLib.parameter_node, BATsegSlicerLib.install\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _saved_and_reloaded(scene):
    """A new scene imported from `scene` saved as XML (what saving and reopening a scene does)."""
    scene.SetSaveToXMLString(1)
    scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetLoadFromXMLString(1)
    reloaded.SetSceneXMLString(scene.GetSceneXMLString())
    reloaded.Import()
    return reloaded
