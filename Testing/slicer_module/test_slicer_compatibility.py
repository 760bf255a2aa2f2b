"""Which Slicer the module supports (issue 14, item 1): Slicer 5.8 bundles Python 3.9, on which
nnU-Net v2 does not run, so the module needs Slicer 5.10+ (Python 3.12) and says so at start-up
in the panel, in the extension description, the CMake build and the documentation."""

from __future__ import annotations

import glob
import importlib.metadata
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from BATsegSlicerLib import install
from BATsegSlicerLib.compatibility import MIN_PYTHON, MIN_SLICER, slicer_version_text, startup_problem

REPO = Path(__file__).resolve().parents[2]


def test_slicer_5_8_is_refused_with_a_message_and_5_10_accepted():
    message = startup_problem((3, 9, 10), "5.8.1")  # what Slicer 5.8 bundles
    assert "Slicer 5.8.1 bundles Python 3.9.10" in message
    assert "needs Python 3.10 or newer" in message and "Install 3D Slicer 5.10 or newer" in message
    assert startup_problem((3, 9)).startswith("This Slicer bundles Python 3.9")
    assert startup_problem((3, 12, 10), "5.10.0") == ""  # what Slicer 5.10 bundles
    assert startup_problem((3, 10, 0)) == ""
    assert startup_problem() == ""  # this interpreter (the engine needs 3.10 too)


def test_slicer_version_is_read_from_the_application_if_there_is_one():
    class App:
        applicationVersion = "5.10.0"

    assert slicer_version_text(App()) == "5.10.0"
    assert slicer_version_text(None) is None


def test_minimum_python_is_what_the_installed_nnunetv2_declares():
    """The floor is nnU-Net's own: Requires-Python of the nnunetv2 the installer asks for."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    nnunet = next(r for r in install.REQUIREMENTS if r.import_name == "nnunetv2")
    try:
        installed = importlib.metadata.version("nnunetv2")
        requires_python = importlib.metadata.metadata("nnunetv2")["Requires-Python"]
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("nnunetv2 is not installed here")
    assert install.satisfies(installed, str(SpecifierSet(nnunet.pip_spec.removeprefix("nnunetv2"))))
    needed = SpecifierSet(requires_python)
    assert Version("3.9.10") not in needed  # Slicer 5.8
    assert Version(".".join(map(str, MIN_PYTHON))) in needed and Version("3.12.10") in needed  # 5.10+


def test_cmake_refuses_an_older_slicer_and_the_description_names_the_version():
    text = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r'set\(BATSEG_MIN_PYTHON_VERSION "3\.10"\)', text)
    assert "Slicer_REQUIRED_PYTHON_VERSION VERSION_LESS BATSEG_MIN_PYTHON_VERSION" in text
    assert "message(FATAL_ERROR" in text
    description = re.search(r'set\(EXTENSION_DESCRIPTION "([^"]*)"\)', text).group(1)
    assert f"3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer" in description


def test_docs_name_the_supported_slicer_versions():
    for path in (REPO / "README.md", REPO / "docs" / "slicer_module.md"):
        text = path.read_text(encoding="utf-8")
        assert "Slicer 5.10 or newer" in text, path
        assert "5.8 or newer" not in text, path


def test_panel_shows_the_startup_problem():
    """The .ui has the label, and the Widget fills it from startup_problem and blocks the panel."""
    ui = (REPO / "BATsegSlicer" / "Resources" / "UI" / "BATsegSlicer.ui").read_text(encoding="utf-8")
    assert 'name="compatibilityLabel"' in ui
    widget = (REPO / "BATsegSlicer" / "BATsegSlicer.py").read_text(encoding="utf-8")
    assert "STARTUP_PROBLEM = startup_problem(slicer_version=slicer_version_text(" in widget
    assert "self.ui.compatibilityLabel.text = STARTUP_PROBLEM" in widget
    assert "PanelState(self.logic.getParameterNode, blocked=STARTUP_PROBLEM)" in widget


def _python39() -> str | None:
    """A working Python 3.9 interpreter (pyenv's, or one on PATH), or None."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    candidates += [found for found in [shutil.which("python3.9")] if found]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                               text=True, timeout=60)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 9)":
            return candidate
    return None


LOAD_ON_SLICER_5_8 = r'''
import sys, types, unittest
calls = []
def module(name, **attributes):
    m = types.ModuleType(name); m.__dict__.update(attributes); sys.modules[name] = m; return m
class Base:
    def __init__(self, *args): pass
class Mixin:
    pass
class Module:
    def __init__(self, parent): self.parent = parent
app = types.SimpleNamespace(applicationVersion="5.8.1", connect=lambda signal, slot: calls.append((signal, slot)))
slicer = module("slicer", app=app)
slicer.ScriptedLoadableModule = module("slicer.ScriptedLoadableModule", ScriptedLoadableModule=Module,
                                       ScriptedLoadableModuleWidget=Base, ScriptedLoadableModuleTest=unittest.TestCase)
slicer.util = module("slicer.util", VTKObservationMixin=Mixin)
for name in ("qt", "ctk", "vtk"):
    module(name)
sys.path.insert(0, sys.argv[1])
import BATsegSlicer
assert "Slicer 5.8.1 bundles Python 3.9" in BATsegSlicer.STARTUP_PROBLEM, BATsegSlicer.STARTUP_PROBLEM
parent = types.SimpleNamespace()
BATsegSlicer.BATsegSlicer(parent)
assert "5.10 or newer" in parent.helpText and calls[0][0] == "startupCompleted()"
calls[0][1]()  # Slicer's start-up completes: only a log line
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("batseg", "BATsegSlicerLib", "numpy", "torch"))
assert loaded == ["BATsegSlicerLib", "BATsegSlicerLib.compatibility"], loaded
print("loaded on", sys.version.split()[0])
'''


def test_module_file_loads_on_slicer_5_8s_python_and_imports_nothing_else():
    """On Python 3.9 (Slicer 5.8) the module must load to show its message: it imports only the
    check, never the engine (which needs 3.10). Run by a real Python 3.9, with stand-ins for
    Slicer's Qt modules (only the module's loading is tested, not the Widget)."""
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 here")
    result = subprocess.run([python, "-c", LOAD_ON_SLICER_5_8, str(REPO / "BATsegSlicer")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("loaded on 3.9")
