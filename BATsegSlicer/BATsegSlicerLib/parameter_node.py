"""The module's parameter node: the panel's state, saved with the scene.

It is the singleton `vtkMRMLScriptedModuleNode` tagged with the module name, exactly what
Slicer's `ScriptedLoadableModuleLogic.getParameterNode()` creates, so the Widget, the Logic and
a saved scene share it. A small typed wrapper is used instead of `slicer.parameterNodeWrapper`
because that needs the application (it is missing headless, where the Logic is tested).
"""

from __future__ import annotations

import slicer

from batseg.postprocess_settings import recommended_one_type_per_lesion

from BATsegSlicerLib.commands import DEVICES, PredictOptions

MODULE_NAME = "BATsegSlicer"
_FLAGS = {"TTA": False, "Postprocess": True, "CropToCord": True, "OneTypePerLesion": False, "Probabilities": False}
_TEXTS = {"Model": "", "Device": "auto", "ExportFolder": "", "Reviewer": "", "ReplayData": ""}
_DEFAULT_EPOCHS = 50


def parameter_node(scene: "slicer.vtkMRMLScene", module_name: str = MODULE_NAME) -> "slicer.vtkMRMLScriptedModuleNode":
    """The module's singleton parameter node in `scene` (created with defaults if missing)."""
    node = scene.GetSingletonNode(module_name, "vtkMRMLScriptedModuleNode")
    if node is None:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(module_name)
        node.SetAttribute("ModuleName", module_name)
        node.SetName(scene.GenerateUniqueName(module_name))
        node = scene.AddNode(node)
    Parameters(node).set_defaults()
    return node


class Parameters:
    """Typed access to the parameter node's values and node references."""

    def __init__(self, node: "slicer.vtkMRMLScriptedModuleNode") -> None:
        self.node = node

    def set_defaults(self) -> None:
        """Give every missing parameter its default (existing values are kept)."""
        for name, value in {**_FLAGS, **_TEXTS}.items():
            if not self.node.GetParameter(name):
                self.node.SetParameter(name, _text(value))
        if not self.node.GetParameter("FineTuneEpochs"):
            self.node.SetParameter("FineTuneEpochs", str(_DEFAULT_EPOCHS))

    # -- node references -------------------------------------------------------------------
    def _get_node(self, role: str):
        return self.node.GetNodeReference(role)

    def _set_node(self, role: str, node) -> None:
        self.node.SetNodeReferenceID(role, node.GetID() if node is not None else None)

    @property
    def input_volume(self):
        return self._get_node("InputVolume")

    @input_volume.setter
    def input_volume(self, node) -> None:
        self._set_node("InputVolume", node)

    @property
    def segmentation(self):
        return self._get_node("Segmentation")

    @segmentation.setter
    def segmentation(self, node) -> None:
        self._set_node("Segmentation", node)

    # -- values ----------------------------------------------------------------------------
    def flag(self, name: str) -> bool:
        return self.node.GetParameter(name) == "true"

    def set_flag(self, name: str, value: bool) -> None:
        self.node.SetParameter(name, _text(bool(value)))

    def text(self, name: str) -> str:
        return self.node.GetParameter(name) or ""

    def set_text(self, name: str, value: str) -> None:
        self.node.SetParameter(name, value or "")

    @property
    def epochs(self) -> int:
        try:
            return max(1, int(self.node.GetParameter("FineTuneEpochs")))
        except ValueError:
            return _DEFAULT_EPOCHS

    @epochs.setter
    def epochs(self, value: int) -> None:
        self.node.SetParameter("FineTuneEpochs", str(int(value)))

    def select_model(self, path: str, manifest: dict) -> None:
        """Make `path` the model; when it changes, the options its validation data chose
        (one type per lesion, `batseg tune-postprocess`) become the panel's, which the user can
        still change for this model."""
        if path == self.text("Model"):
            return
        self.set_text("Model", path)
        self.set_flag("OneTypePerLesion", recommended_one_type_per_lesion(manifest))

    def predict_options(self) -> PredictOptions:
        """The run options as the Logic takes them."""
        device = self.text("Device") if self.text("Device") in DEVICES else "auto"
        return PredictOptions(device=device, tta=self.flag("TTA"), postprocess=self.flag("Postprocess"),
                              crop_to_cord=self.flag("CropToCord"),
                              one_type_per_lesion=self.flag("OneTypePerLesion"),
                              save_probabilities=self.flag("Probabilities"))


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
