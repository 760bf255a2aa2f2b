"""Command lines and environment of the engine's child processes (`python -m batseg ...`).

The contract with the engine (`batseg predict` / `batseg train`) is written down here once.
The child imports `batseg` from this module's folder (PYTHONPATH), so Slicer needs no separate
install of the engine; its heavy dependencies (torch, nnU-Net) live in Slicer's Python
environment (see `install.py`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from batseg.errors import BATsegError

# BATsegSlicer/ : holds both BATsegSlicerLib/ and the engine package batseg/.
MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class PredictOptions:
    """User options of one segmentation run (defaults: the engine's recommended settings)."""

    device: str = "auto"
    tta: bool = False
    postprocess: bool = True
    crop_to_cord: bool = True  # the cascade crop: the engine's default; False segments the whole volume
    one_type_per_lesion: bool = False
    save_probabilities: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise BATsegError(f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")


def build_predict_command(python: str, input_path: str, output_dir: str, model_path: str,
                          options: PredictOptions) -> list[str]:
    """`batseg predict` for one input file, with JSON progress on stdout."""
    command = [python, "-m", "batseg", "predict", "-i", input_path, "-o", output_dir, "--model", model_path,
               "--device", options.device, "--progress", "json"]
    if options.tta:
        command.append("--tta")
    if not options.postprocess:
        command.append("--no-postprocess")
    if not options.crop_to_cord:
        command.append("--no-crop")
    # Always explicit: the checkbox is the truth (it starts from the model's recommendation).
    command.append("--one-type-per-lesion" if options.one_type_per_lesion else "--no-one-type-per-lesion")
    if options.save_probabilities:
        command.append("--save-probabilities")
    return command


def build_train_command(python: str, model_path: str, data_dir: str, output_path: str,
                        epochs: int | None = None, device: str = "auto", replay_data: str = "") -> list[str]:
    """`batseg train --finetune-from` on an exported nnU-Net raw folder, writing a new model file.

    `replay_data`: the model's original training data (nnU-Net raw folder), mixed in so the model
    does not forget; empty leaves the choice to the engine (manifest folders, regenerated phantoms).
    """
    if device not in DEVICES:
        raise BATsegError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    command = [python, "-m", "batseg", "train", "--finetune-from", model_path, "--data", data_dir,
               "--output", output_path, "--progress", "json", "--device", device]
    if epochs is not None:
        if epochs < 1:
            raise BATsegError(f"the number of epochs must be at least 1, got {epochs}")
        command += ["--epochs", str(int(epochs))]
    if replay_data:
        command += ["--replay-data", replay_data]
    return command


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: `base` (default: Slicer's startup environment or os.environ)
    plus PYTHONPATH starting with the module folder, unbuffered UTF-8 output."""
    if base is None:
        base = _startup_environment()
    env = dict(base)
    paths = [MODULE_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"  # events must arrive as they happen, not when a buffer fills
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _startup_environment() -> dict[str, str]:
    """Slicer's launcher environment when available (what PythonSlicer expects), else os.environ."""
    import slicer

    if getattr(slicer, "app", None) is not None and hasattr(slicer.util, "startupEnvironment"):
        return dict(slicer.util.startupEnvironment())
    return dict(os.environ)


def python_executable() -> str:
    """The Python interpreter that runs the engine in the child process.

    Inside Slicer `sys.executable` is the Slicer binary in some versions, so, as SlicerNNUnet and
    SlicerTotalSegmentator do, the `PythonSlicer` launcher is used (on PATH inside Slicer, or
    next to the executable); outside Slicer (tests, batch) it is `sys.executable`.
    """
    import shutil

    import slicer

    if getattr(slicer, "app", None) is None:
        return sys.executable
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = os.path.join(os.path.dirname(sys.executable), "PythonSlicer" + (".exe" if os.name == "nt" else ""))
    if os.path.isfile(candidate):
        return candidate
    raise BATsegError("cannot find Slicer's 'PythonSlicer' interpreter next to the Slicer executable: reinstall Slicer")
