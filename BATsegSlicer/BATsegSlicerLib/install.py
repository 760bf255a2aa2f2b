"""Installing the engine's dependencies into Slicer's Python, safely.

Rules (from the complaints users have about other AI extensions):
- torch comes from the PyTorch extension (`PyTorchUtils.PyTorchUtilsLogic().installTorch`),
  which picks the build matching the machine's CUDA; never from pip here.
- Slicer's own SimpleITK, numpy and requests are never replaced: every pip call gets a
  constraints file pinning their installed versions, so pip fails with a message instead of
  upgrading them.
- nnunetv2 and dynamic-network-architectures are installed with --no-deps (the latter pulls
  timm -> torchvision -> another torch build); their remaining requirements are then read
  from the installed metadata and installed without torch, torchvision, timm and the
  protected packages.
- The user is asked before anything is installed, and asked to restart Slicer afterwards
  (already imported modules would otherwise stay at their old versions).
Only the planning (what is missing, which pip calls) is plain Python and tested headless; the
calls themselves need the Slicer application.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Callable

PROTECTED = ("SimpleITK", "numpy", "requests")  # Slicer's own copies
NEVER_PIP = ("torch", "torchvision", "timm")  # torch via PyTorch extension; timm/torchvision unused
TORCH_REQUIREMENT = ">=2.1"


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


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def missing(find_spec: Callable[[str], object] = importlib.util.find_spec) -> list[Requirement]:
    """The requirements whose module cannot be found (nothing is imported)."""
    return [r for r in REQUIREMENTS if find_spec(r.import_name) is None]


def torch_missing(find_spec: Callable[[str], object] = importlib.util.find_spec) -> bool:
    return find_spec("torch") is None


def requirement_specs(requirements: list[str]) -> list[tuple[str, str]]:
    """(name, specifier without environment marker) of metadata requirement strings; extras-only
    requirements (`; extra == "dev"`) are skipped."""
    specs = []
    for text in requirements:
        if re.search(r"\bextra\s*==", text):
            continue
        spec = text.split(";", 1)[0].strip()
        specs.append((re.split(r"[<>=!~\[ (]", spec, maxsplit=1)[0], spec))
    return specs


def remaining_dependencies(distribution: str, installed: Callable[[str], bool],
                           requires: Callable[[str], list[str] | None] = importlib.metadata.requires) -> list[str]:
    """Requirement specifiers of a package installed with --no-deps that are still missing
    (never torch, torchvision, timm, the protected packages or the engine's own list)."""
    excluded = {normalize(n) for n in PROTECTED + NEVER_PIP} | {normalize(r.distribution) for r in REQUIREMENTS}
    chosen = {}
    for name, spec in requirement_specs(requires(distribution) or []):
        if normalize(name) not in excluded and not installed(name):
            chosen[normalize(name)] = spec
    return [chosen[key] for key in sorted(chosen)]


def constraints_text(version: Callable[[str], str | None]) -> str:
    """pip constraints pinning the protected packages at their installed versions."""
    lines = []
    for name in PROTECTED:
        installed = version(name)
        if installed:
            lines.append(f"{name}=={installed}")
    return "\n".join(lines) + "\n"


def pip_calls(needed: list[Requirement], constraints_path: str) -> list[list[str]]:
    """The pip argument lists (after 'install') for the needed requirements."""
    calls = []
    no_deps = [r.pip_spec for r in needed if r.no_deps]
    plain = [r.pip_spec for r in needed if not r.no_deps]
    if no_deps:
        calls.append(["--no-deps", *no_deps])
    if plain:
        calls.append(["-c", constraints_path, *plain])
    return calls


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_missing() -> str:
    """One line naming what is missing ('' when everything is installed)."""
    names = (["torch (through the PyTorch extension)"] if torch_missing() else []) + [r.distribution for r in missing()]
    return ", ".join(names)


def install_dependencies(log: Callable[[str], None]) -> bool:
    """Install what is missing, inside Slicer (ask the user before calling). True if anything changed."""
    import slicer

    changed = False
    if torch_missing():
        import PyTorchUtils

        log("Installing PyTorch through the PyTorch extension...")
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                         torchVersionRequirement=TORCH_REQUIREMENT) is None:
            raise RuntimeError("PyTorch could not be installed: install it from the PyTorch module, then try again")
        changed = True
    needed = missing()
    if not needed:
        return changed
    with tempfile.TemporaryDirectory(prefix="batseg-pip-") as folder:
        constraints = os.path.join(folder, "constraints.txt")
        with open(constraints, "w", encoding="utf-8") as handle:
            handle.write(constraints_text(installed_version))
        for arguments in pip_calls(needed, constraints):
            log("pip install " + " ".join(arguments))
            slicer.util.pip_install(arguments)
        for requirement in (r for r in needed if r.no_deps):
            extra = remaining_dependencies(requirement.distribution, lambda n: installed_version(n) is not None)
            if extra:
                log("pip install " + " ".join(extra))
                slicer.util.pip_install(["-c", constraints, *extra])
    return True
