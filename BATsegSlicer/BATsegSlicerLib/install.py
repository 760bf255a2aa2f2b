"""Installing the engine's dependencies into Slicer's Python, safely, and checking what is there.

Rules (from the complaints users have about other AI extensions):
- torch is the build that matches the machine's GPU driver, chosen by light-the-torch, the tool
  the PyTorch extension (PyTorchUtils) is built on; never a plain pip torch from here. The
  extension's `installTorch` is not used: it also installs torchvision and then imports torch
  into Slicer's own process, and this module never loads torch there (the engine and the GPU
  probe run in child processes). The extension installs light-the-torch
  (`PyTorchUtilsLogic.getCompatibleComputationBackends`, which also reports the builds that fit
  this machine); `light_the_torch install torch...` then runs as a child process, for torch
  alone. Without the PyTorch extension the user gets a one-line message naming it.
- Slicer's own SimpleITK, numpy and requests are never replaced: every pip call gets a
  constraints file pinning their installed versions, so pip fails with a message instead of
  upgrading them.
- nnunetv2 and dynamic-network-architectures are installed with --no-deps (the latter pulls
  timm -> torchvision -> another torch build); their remaining requirements are then read from
  the installed metadata and installed without torch, torchvision, timm and the protected
  packages.
- What is installed is checked by version (importlib.metadata) against the same requirement
  specifiers the installer installs, not by whether a name imports: a package that is present
  but too old (dynamic-network-architectures 0.2.0, which SlicerNNUnet pins for
  TotalSegmentator; this engine needs >= 0.4) counts as a problem, and so does any requirement
  of nnunetv2 or dynamic-network-architectures that a later pip call failed to install (e.g.
  imagecodecs without a wheel for the platform). `check()` lists each problem with the
  installed version and what is needed; the panel shows that list, and an install that leaves
  any problem ends with an error naming it rather than "installed".
- The user is asked before anything is installed, and asked to restart Slicer afterwards
  (already imported modules would otherwise stay at their old versions).
Only the planning and the checks are plain Python and tested headless; the calls themselves
need the Slicer application.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Callable

from batseg.errors import BATsegError

PROTECTED = ("SimpleITK", "numpy", "requests")  # Slicer's own copies
NEVER_PIP = ("torch", "torchvision", "timm")  # torch via light-the-torch; timm/torchvision unused
# nnunetv2 2.8 declares torch!=2.9.*,>=2.1.2: ask for the same, so one install round suffices.
TORCH_REQUIREMENT = ">=2.1.2,!=2.9.*"
LIGHT_THE_TORCH = "light-the-torch>=0.5"  # the version the PyTorch extension installs
PYTORCH_EXTENSION_MISSING = (
    "BATseg installs PyTorch through the 'PyTorch' extension, which is not installed: install 'PyTorch' "
    "from the Extensions Manager, restart Slicer, and try again")

Versions = Callable[[str], "str | None"]
Requires = Callable[[str], "list[str] | None"]


@dataclass(frozen=True)
class Requirement:
    """A package the engine needs: how it is imported and how pip names it."""

    import_name: str
    pip_spec: str
    no_deps: bool = False

    @property
    def distribution(self) -> str:
        return re.split(r"[<>=!~;\[ ]", self.pip_spec, maxsplit=1)[0]


# What `batseg predict` / `batseg train` import besides torch and nnU-Net's own requirements
# (safetensors: model files; psutil: memory checks and cancelling; onnxruntime: the CPU backend).
# Evaluation-only packages of the command line (matplotlib, onnx) are not needed in Slicer.
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("nnunetv2", "nnunetv2>=2.6,<2.9", no_deps=True),
    Requirement("dynamic_network_architectures", "dynamic-network-architectures>=0.4", no_deps=True),
    Requirement("safetensors", "safetensors"),
    Requirement("psutil", "psutil"),
    Requirement("scipy", "scipy"),
    Requirement("onnxruntime", "onnxruntime"),
)


@dataclass(frozen=True)
class Problem:
    """A requirement that the installed packages do not meet."""

    name: str  # distribution name
    specifier: str  # what is needed ('' for any version), the installer's own specifier
    installed: str | None  # installed version, None when not installed
    no_deps: bool = False  # installed with pip --no-deps
    protected: bool = False  # Slicer's own package: never replaced by this installer

    @property
    def requirement(self) -> str:
        """The requirement string the installer passes on (pip or light-the-torch)."""
        return self.name + self.specifier

    def describe(self) -> str:
        if self.installed is None:
            text = f"{self.name} (not installed)"
        else:
            text = f"{self.name} {self.installed} (needs {self.specifier})"
        if self.protected:
            text += " [Slicer's own package: it is never replaced; a newer Slicer brings a newer one]"
        return text


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _packaging():
    """`packaging` (bundled with Slicer since 5.x), else the copy vendored by pip."""
    try:
        from packaging.requirements import Requirement as Parsed
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - every Python with pip has the vendored copy
        from pip._vendor.packaging.requirements import Requirement as Parsed
        from pip._vendor.packaging.specifiers import SpecifierSet
        from pip._vendor.packaging.version import InvalidVersion, Version
    return Parsed, SpecifierSet, Version, InvalidVersion


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def satisfies(version: str | None, specifier: str) -> bool:
    """True if an installed `version` meets `specifier` ('' accepts any installed version)."""
    if version is None:
        return False
    _, SpecifierSet, Version, InvalidVersion = _packaging()
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def applicable_requirements(texts: list[str] | None) -> list:
    """Parsed metadata requirements that apply here (environment markers evaluated; extras skipped)."""
    Parsed = _packaging()[0]
    parsed = []
    for text in texts or []:
        requirement = Parsed(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        parsed.append(requirement)
    return parsed


def _wanted(version: Versions, requires: Requires) -> dict[str, dict]:
    """Normalized name -> {name, specifiers, no_deps, protected}: the engine's list, then the
    requirements of the --no-deps packages that are installed (merged where both name one)."""
    Parsed = _packaging()[0]
    no_deps = {normalize(r.distribution) for r in REQUIREMENTS if r.no_deps}
    protected = {normalize(n) for n in PROTECTED}
    wanted: dict[str, dict] = {}

    def add(name: str, specifier: str) -> None:
        entry = wanted.setdefault(normalize(name), {"name": name, "specifiers": [], "no_deps": normalize(name) in no_deps,
                                                    "protected": normalize(name) in protected})
        if specifier and specifier not in entry["specifiers"]:
            entry["specifiers"].append(specifier)

    for requirement in REQUIREMENTS:
        add(requirement.distribution, str(Parsed(requirement.pip_spec).specifier))
    for requirement in REQUIREMENTS:
        if requirement.no_deps and version(requirement.distribution) is not None:
            for dependency in applicable_requirements(requires(requirement.distribution)):
                if normalize(dependency.name) not in {normalize(n) for n in NEVER_PIP}:
                    add(dependency.name, str(dependency.specifier))
    return wanted


def _combined(specifiers: list[str]) -> str:
    SpecifierSet = _packaging()[1]
    combined = SpecifierSet("")
    for specifier in specifiers:
        combined &= SpecifierSet(specifier)
    return str(combined)


def torch_specifier(version: Versions = installed_version, requires: Requires = importlib.metadata.requires) -> str:
    """What torch must satisfy: TORCH_REQUIREMENT and what the installed --no-deps packages ask."""
    specifiers = [TORCH_REQUIREMENT]
    for requirement in REQUIREMENTS:
        if requirement.no_deps and version(requirement.distribution) is not None:
            specifiers += [str(d.specifier) for d in applicable_requirements(requires(requirement.distribution))
                           if normalize(d.name) == "torch" and str(d.specifier)]
    return _combined(specifiers)


def check(version: Versions = installed_version, requires: Requires = importlib.metadata.requires) -> list[Problem]:
    """Every requirement the installed packages do not meet (torch first); [] when all is well."""
    problems = []
    torch_needs = torch_specifier(version, requires)
    if not satisfies(version("torch"), torch_needs):
        problems.append(Problem("torch", torch_needs, version("torch")))
    for entry in _wanted(version, requires).values():
        specifier = _combined(entry["specifiers"])
        installed = version(entry["name"])
        if not satisfies(installed, specifier):
            problems.append(Problem(entry["name"], specifier, installed, entry["no_deps"], entry["protected"]))
    return problems


def describe(problems: list[Problem]) -> str:
    """One line naming every problem ('' when there is none)."""
    return "; ".join(problem.describe() for problem in problems)


def describe_problems(version: Versions = installed_version, requires: Requires = importlib.metadata.requires) -> str:
    """One line naming what is missing or too old ('' when everything is installed)."""
    return describe(check(version, requires))


def torch_missing(version: Versions = installed_version) -> bool:
    """True when torch is not installed at all (the GPU probe then has nothing to ask)."""
    return version("torch") is None


def constraints_text(version: Callable[[str], str | None]) -> str:
    """pip constraints pinning the protected packages at their installed versions."""
    lines = []
    for name in PROTECTED:
        installed = version(name)
        if installed:
            lines.append(f"{name}=={installed}")
    return "\n".join(lines) + "\n"


def pip_calls(problems: list[Problem], constraints_path: str) -> list[list[str]]:
    """The pip argument lists (after 'install') that fix `problems` (torch and Slicer's own
    packages excluded: torch comes from light-the-torch, Slicer's packages are never replaced)."""
    fixable = [p for p in problems if normalize(p.name) not in {normalize(n) for n in NEVER_PIP} and not p.protected]
    no_deps = [p.requirement for p in fixable if p.no_deps]
    plain = [p.requirement for p in fixable if not p.no_deps]
    calls = []
    if no_deps:
        calls.append(["--no-deps", *no_deps])
    if plain:
        calls.append(["-c", constraints_path, *plain])
    return calls


def torch_install_command(python: str, specifier: str = TORCH_REQUIREMENT) -> list[str]:
    """light-the-torch's command for torch alone (the build matching the GPU driver; no torchvision)."""
    return [python, "-m", "light_the_torch", "install", f"torch{specifier}"]


def pytorch_utils():
    """The PyTorch extension's module, or a one-line BATsegError naming the extension."""
    try:
        import PyTorchUtils
    except ImportError:
        raise BATsegError(PYTORCH_EXTENSION_MISSING) from None
    return PyTorchUtils


def install_torch(log: Callable[[str], None], specifier: str, python: str) -> None:
    """Install torch through light-the-torch in a child process; torch is never imported here."""
    import slicer

    utils = pytorch_utils()
    logic_class = getattr(utils, "PyTorchUtilsLogic", None)
    if logic_class is not None and hasattr(logic_class, "getCompatibleComputationBackends"):
        backends = logic_class.getCompatibleComputationBackends(None, specifier)  # installs light-the-torch
        log(f"PyTorch builds that fit this computer: {', '.join(backends)}")
    elif importlib.util.find_spec("light_the_torch") is None:
        slicer.util.pip_install(LIGHT_THE_TORCH)
    command = torch_install_command(python, specifier)
    log(" ".join(command[1:]))
    _run(lambda: slicer.util.logProcessOutput(slicer.util.launchConsoleProcess(command)),
         "PyTorch could not be installed: " + " ".join(command[1:]))


def _run(call: Callable[[], object], failure: str) -> None:
    """Run an installer child process (its output goes to Slicer's log); one-line error on failure."""
    import subprocess

    try:
        call()
    except subprocess.CalledProcessError as error:
        raise BATsegError(f"{failure} (exit status {error.returncode}); see the log (View > Error Log)") from None


def install_dependencies(log: Callable[[str], None], python: str | None = None,
                         rounds: int = 2) -> bool:
    """Install what `check()` reports, inside Slicer (ask the user before calling).

    Two rounds: nnunetv2's own requirements are known only once nnunetv2 is installed. Returns
    True if anything was installed; raises a one-line BATsegError naming every problem left.
    """
    import slicer

    if python is None:
        from BATsegSlicerLib.commands import python_executable

        python = python_executable()
    changed = False
    with tempfile.TemporaryDirectory(prefix="batseg-pip-") as folder:
        constraints = os.path.join(folder, "constraints.txt")
        with open(constraints, "w", encoding="utf-8") as handle:
            handle.write(constraints_text(installed_version))
        for _ in range(rounds):
            importlib.invalidate_caches()
            problems = check()
            torch = next((p for p in problems if p.name == "torch"), None)
            calls = pip_calls(problems, constraints)
            if torch is None and not calls:
                break
            if torch is not None:
                log(f"Installing PyTorch{torch.specifier} with light-the-torch...")
                install_torch(log, torch.specifier, python)
            for arguments in calls:
                log("pip install " + " ".join(arguments))
                _run(lambda arguments=arguments: slicer.util.pip_install(arguments),
                     "pip could not install " + " ".join(a for a in arguments if a not in ("-c", constraints)))
            changed = True
    importlib.invalidate_caches()
    left = check()
    if left:
        raise BATsegError("the dependencies are not complete: " + describe(left) + ". See the log for pip's message")
    return changed
