"""Which Slicer can run BATseg: checked when the module starts, the answer shown in the panel.

The engine builds its network with nnU-Net v2, and every nnunetv2 release in the range the
installer asks for (install.py: >=2.6,<2.9) requires Python >= 3.10. Slicer bundles its own
Python: 5.8 ships 3.9.10, 5.10 and later ship 3.12 (SuperBuild/External_python.cmake at the
v5.8.0 and v5.10.0 tags). So the module supports Slicer 5.10 and newer.

The check is on the Python version, which is what decides (a custom build of an older Slicer
with a newer Python would work); the message names the Slicer version, which is what users
know. On an older Slicer the module still loads, so that the panel can say why it cannot
segment: Segment, Fine-tune and Install dependencies stay disabled, and no run ever gets as far
as an ImportError in the child process.
"""

from __future__ import annotations

import sys
from typing import Sequence

MIN_PYTHON = (3, 10)
MIN_SLICER = (5, 10)


def _dotted(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def startup_problem(python_version: Sequence[int] | None = None, slicer_version: str | None = None) -> str:
    """'' when this Slicer can run BATseg, else one paragraph saying why not and what to do.

    `python_version`: (major, minor[, micro]) of Slicer's Python (default: this interpreter's);
    `slicer_version`: Slicer's version text (e.g. "5.8.1") for the message, if known.
    """
    python = tuple(int(part) for part in (python_version if python_version is not None else sys.version_info[:3]))
    if python[:2] >= MIN_PYTHON:
        return ""
    this_slicer = f"Slicer {slicer_version}" if slicer_version else "This Slicer"
    return (f"{this_slicer} bundles Python {_dotted(python)}, but BATseg needs Python {_dotted(MIN_PYTHON)} or newer "
            f"(nnU-Net v2, which builds its network, does not run on older Python). Install 3D Slicer "
            f"{_dotted(MIN_SLICER)} or newer to segment and fine-tune; nothing will be installed into this one.")


def slicer_version_text(app) -> str | None:
    """The running Slicer's version ('5.10.0'), or None when it cannot be read (headless)."""
    version = getattr(app, "applicationVersion", None) if app is not None else None
    return str(version) if version else None
