"""Dependency checks and the torch install (issue 14, items 4 and 7).

- A half-finished install is not "complete": nnunetv2 installed with --no-deps while a later pip
  call failed (imagecodecs without a wheel) leaves problems that `install.check` lists.
- Old versions count: dynamic-network-architectures 0.2.0 (SlicerNNUnet's pin for
  TotalSegmentator) is reported with what is needed, and the installer asks for exactly the
  specifier the check uses.
- torch is installed by light-the-torch for torch alone, in a child process: PyTorchUtils'
  installTorch (torchvision, torch imported into Slicer) is never called; a missing PyTorch
  extension gives a one-line message.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from batseg.errors import BATsegError
from BATsegSlicerLib import install

NNUNET_REQUIRES = ["torch!=2.9.*,>=2.1.2", "acvl-utils<0.3,>=0.2.6", "dynamic-network-architectures<0.5,>=0.4.4",
                   "tqdm", "scipy", "numpy>=1.24", "SimpleITK>=2.2.1", "requests", "imagecodecs",
                   'pre-commit; extra == "dev"', 'torch<2.3; extra == "intel-macos"',
                   'colorama; python_version < "3"']
DNA_REQUIRES = ["torch>=1.6.0a", "numpy", "timm<1.0.23", "einops"]
COMPLETE = {"torch": "2.5.1+cu121", "nnunetv2": "2.8.1", "dynamic-network-architectures": "0.4.4",
            "safetensors": "0.4.5", "psutil": "6.1.0", "scipy": "1.14.1", "onnxruntime": "1.20.0",
            "acvl-utils": "0.2.6", "tqdm": "4.67.0", "numpy": "1.26.4", "SimpleITK": "2.4.0", "requests": "2.32.3",
            "imagecodecs": "2024.9.22", "einops": "0.8.0"}


def _requires(name):
    return {"nnunetv2": NNUNET_REQUIRES, "dynamic-network-architectures": DNA_REQUIRES}.get(name)


def _check(**changes):
    versions = {**COMPLETE, **changes}
    return install.check(lambda name: versions.get(name), _requires)


def test_complete_installation_has_no_problem():
    assert _check() == []
    assert install.describe([]) == ""


def test_half_finished_install_is_not_complete():
    """nnunetv2 and its --no-deps sibling are in, the later pip call for their requirements failed."""
    problems = _check(**{"imagecodecs": None, "acvl-utils": None, "einops": None})
    assert [p.name for p in problems] == ["acvl-utils", "imagecodecs", "einops"]
    assert install.describe(problems) == ("acvl-utils (not installed); imagecodecs (not installed); "
                                          "einops (not installed)")
    # The installer fixes exactly these, with the specifiers the check used.
    assert install.pip_calls(problems, "c.txt") == [["-c", "c.txt", "acvl-utils<0.3,>=0.2.6", "imagecodecs", "einops"]]


def test_too_old_versions_count_and_are_named():
    problems = _check(**{"dynamic-network-architectures": "0.2.0", "nnunetv2": "2.5.3"})
    by_name = {p.name: p for p in problems}
    dna = by_name["dynamic-network-architectures"]
    # The engine's >=0.4 and nnunetv2's own <0.5,>=0.4.4, merged.
    assert dna.installed == "0.2.0" and dna.no_deps
    assert dna.describe() == "dynamic-network-architectures 0.2.0 (needs <0.5,>=0.4,>=0.4.4)"
    assert by_name["nnunetv2"].describe() == "nnunetv2 2.5.3 (needs <2.9,>=2.6)"
    # Installed again with --no-deps (no timm -> torchvision -> torch), with the check's specifiers.
    assert install.pip_calls(problems, "c.txt") == [
        ["--no-deps", "nnunetv2<2.9,>=2.6", "dynamic-network-architectures<0.5,>=0.4,>=0.4.4"]]


def test_nothing_installed_lists_torch_and_the_engines_packages():
    problems = install.check(lambda name: None, lambda name: None)
    assert [p.name for p in problems] == ["torch", "nnunetv2", "dynamic-network-architectures", "safetensors",
                                          "psutil", "scipy", "onnxruntime"]
    assert problems[0].requirement == "torch!=2.9.*,>=2.1.2"  # install.TORCH_REQUIREMENT
    assert install.pip_calls(problems, "c.txt") == [
        ["--no-deps", "nnunetv2<2.9,>=2.6", "dynamic-network-architectures>=0.4"],
        ["-c", "c.txt", "safetensors", "psutil", "scipy", "onnxruntime"]]


def test_torch_must_meet_what_nnunetv2_declares():
    problems = _check(torch="2.9.0")
    assert [p.name for p in problems] == ["torch"]
    assert problems[0].describe() == "torch 2.9.0 (needs !=2.9.*,>=1.6.0a,>=2.1.2)"
    assert install.pip_calls(problems, "c.txt") == []  # never by pip: light-the-torch installs torch


def test_markers_and_extras_are_evaluated():
    texts = ['pre-commit; extra == "dev"', 'colorama; python_version < "3"', 'tqdm; python_version >= "3.9"']
    assert [r.name for r in install.applicable_requirements(texts)] == ["tqdm"]


def test_this_environment_meets_the_installer_specification():
    """The engine's test environment is installed as the installer would install it."""
    problems = install.check()
    assert problems == [], install.describe(problems)


def test_torch_is_installed_by_light_the_torch_alone_in_a_child(monkeypatch):
    calls = []

    class PyTorchUtilsLogic:
        def installTorch(self, *args, **kwargs):  # imports torch into Slicer and installs torchvision
            raise AssertionError("installTorch must not be used")

        @staticmethod
        def getCompatibleComputationBackends(forceComputationBackend=None, torchVersionRequirement=None):
            calls.append(("backends", torchVersionRequirement))
            return ["cpu", "cu121"]

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    import slicer

    monkeypatch.setattr(slicer.util, "launchConsoleProcess", lambda command: calls.append(("run", command)) or "p",
                        raising=False)
    monkeypatch.setattr(slicer.util, "logProcessOutput", lambda process: calls.append(("log", process)), raising=False)
    torch_before = "torch" in sys.modules
    log = []
    install.install_torch(log.append, ">=2.1.2,!=2.9.*", "/slicer/bin/PythonSlicer")
    assert calls == [("backends", ">=2.1.2,!=2.9.*"),
                     ("run", ["/slicer/bin/PythonSlicer", "-m", "light_the_torch", "install", "torch>=2.1.2,!=2.9.*"]),
                     ("log", "p")]
    assert not any("torchvision" in str(call) for call in calls)
    assert ("torch" in sys.modules) == torch_before  # torch was not imported here
    assert "cpu, cu121" in log[0]


def test_a_failing_install_step_gives_a_one_line_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=type("L", (), {})))
    monkeypatch.setattr(install.importlib.util, "find_spec", lambda name: object())  # light-the-torch is there
    import slicer

    def fail(command):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(slicer.util, "launchConsoleProcess", fail, raising=False)
    with pytest.raises(BATsegError, match=r"PyTorch could not be installed: -m light_the_torch install "
                                          r"torch>=2.1 \(exit status 1\)"):
        install.install_torch(lambda line: None, ">=2.1", "PythonSlicer")


def test_missing_pytorch_extension_gives_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # `import PyTorchUtils` raises ModuleNotFoundError
    with pytest.raises(BATsegError, match="install 'PyTorch' from the Extensions Manager"):
        install.pytorch_utils()
    with pytest.raises(BATsegError, match="'PyTorch' extension, which is not installed"):
        install.install_torch(lambda line: None, ">=2.1", "PythonSlicer")


def test_install_that_leaves_a_problem_ends_with_an_error(monkeypatch):
    """The second pip call fails to bring imagecodecs: the install says so, not 'installed'."""
    import slicer

    installed = {**COMPLETE, "imagecodecs": None}
    pip_calls = []
    real_check = install.check
    monkeypatch.setattr(install, "installed_version", lambda name: installed.get(name))
    monkeypatch.setattr(install, "check", lambda *args, **kwargs: real_check(lambda name: installed.get(name), _requires))
    monkeypatch.setattr(slicer.util, "pip_install", lambda arguments: pip_calls.append(arguments), raising=False)
    with pytest.raises(BATsegError, match=r"not complete: imagecodecs \(not installed\)"):
        install.install_dependencies(lambda line: None, python="PythonSlicer")
    assert [call[2:] for call in pip_calls] == [["imagecodecs"], ["imagecodecs"]]  # two rounds, then the verdict
