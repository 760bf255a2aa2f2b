"""A real MRML scene with the logics the module uses, outside the Slicer application.

slicer-core (`pip install slicer-core`) gives Slicer's MRML scene and module logics without Qt;
this sets up the ones BATseg's Logic and export call (Colors, Volumes, Segmentations, Subject
Hierarchy) and installs the scene as `slicer.mrmlScene` and the logics as `slicer.modules.X.logic()`,
as the application does. Used by the headless tests (Testing/slicer_module/conftest.py) and by
scripts that drive the module's own code in a batch (scripts/bench_retrain_loop.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def install_scene(slicer: Any) -> SimpleNamespace:
    """A fresh scene with real module logics, installed into `slicer`; returns the scene, the
    application logic and the logics by name (`logics`), plus `volumes` and `segmentations`."""
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    logics = {
        "Colors": app.GetColorLogic(),
        "Volumes": slicer.vtkSlicerVolumesLogic(),
        "Segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
        "SubjectHierarchy": slicer.vtkSlicerSubjectHierarchyModuleLogic(),
    }
    for name, logic in logics.items():
        logic.SetMRMLScene(scene)  # Segmentations: registers the converter rules
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
    slicer.mrmlScene = scene
    slicer.modules = SimpleNamespace(**{name.lower(): SimpleNamespace(logic=lambda logic=logic: logic)
                                        for name, logic in logics.items()})
    return SimpleNamespace(scene=scene, app=app, logics=logics, volumes=logics["Volumes"],
                           segmentations=logics["Segmentations"])
