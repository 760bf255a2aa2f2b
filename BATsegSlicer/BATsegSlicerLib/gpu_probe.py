"""The panel's GPU check as a state machine: started once when the panel is set up, polled by the
panel's timer, and the source of the line under the device choice.

States (ProbeState):
  IDLE      not started yet
  NO_TORCH  PyTorch is not installed: there is nothing to ask, the line says so
  PROBING   the child process (gpu.probe_process) runs; the line says "Checking the GPU..." once
            the panel asks for it
  FAILED    the child could not be started: one log line, and an empty device line (the probe
            is advisory, it never blocks the panel)
  DONE      the answer (`info`, a gpu.GpuInfo) decides the line: its warning for the chosen
            device, else its description ("NVIDIA ...: 7000 of 8000 MiB free")
  CANCELLED the panel was closed while the child ran

torch is never imported here: the answer comes from the child (see gpu.py). Whether torch is
installed is asked each time the line is built, so the line follows an install.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

from BATsegSlicerLib import install
from BATsegSlicerLib.gpu import GpuInfo, parse_probe, probe_process
from BATsegSlicerLib.process import ChildProcess

TORCH_MISSING = "PyTorch is not installed yet: see Dependencies below"
CHECKING = "Checking the GPU..."


class ProbeState(Enum):
    IDLE = "idle"
    NO_TORCH = "no torch"
    PROBING = "probing"
    FAILED = "failed"
    DONE = "done"
    CANCELLED = "cancelled"


class GpuProbe:
    """One GPU check in a child process, and what the panel says about the chosen device."""

    def __init__(self, torch_missing: Callable[[], bool] = install.torch_missing,
                 process: Callable[[str], ChildProcess] = probe_process) -> None:
        """`torch_missing` and `process` (python -> the unstarted probe child): injected by tests."""
        self._torch_missing = torch_missing
        self._new_process = process
        self._process: ChildProcess | None = None
        self._lines: list[str] = []
        self.state = ProbeState.IDLE
        self.info: GpuInfo | None = None
        self.failure = ""  # the log line of a probe that could not start

    def start(self, python: Callable[[], str]) -> ProbeState:
        """Start the check with the engine's interpreter (`python`, asked only when it is needed)."""
        if self._torch_missing():
            self.state = ProbeState.NO_TORCH
            return self.state
        try:
            self._process = self._new_process(python())
            self._process.start()
            self._lines = []
            self.state = ProbeState.PROBING
        except Exception as error:  # the probe is advisory: never block the panel on it
            self._process = None
            self.failure = f"GPU check failed: {error}"
            self.state = ProbeState.FAILED
        return self.state

    @property
    def probing(self) -> bool:
        return self.state is ProbeState.PROBING

    @property
    def cuda(self) -> bool | None:
        """Whether the engine would find a CUDA GPU (None: not known yet)."""
        return self.info.cuda if self.info is not None else None

    def poll(self) -> bool:
        """Read the child's output; True when the answer has just arrived (the device line changes)."""
        if self._process is None or not self.probing:
            return False
        self._lines += [line.text for line in self._process.read_lines()]
        if not self._process.finished:
            return False
        self.info = parse_probe(self._lines)
        self._process = None
        self.state = ProbeState.DONE
        return True

    def cancel(self) -> None:
        """Stop a running check (the panel is closing)."""
        if self._process is not None and self.probing and not self._process.finished:
            self._process.cancel()
            self.state = ProbeState.CANCELLED

    def warning(self, device: str) -> str:
        """The line under the device choice for `device` ("auto", "cpu", "cuda")."""
        if self._torch_missing():
            return TORCH_MISSING
        if self.info is None:
            return CHECKING if self.probing else ""
        return self.info.warning(device) or self.info.describe()
