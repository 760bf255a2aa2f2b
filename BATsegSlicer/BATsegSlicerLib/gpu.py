"""What GPU the engine would use, asked in a child process (never importing torch in Slicer).

Importing torch inside Slicer's process takes seconds, holds GPU memory and can clash with
Slicer's own libraries; the probe runs `python -c PROBE_CODE` with the same interpreter and
environment as the engine and reads one JSON line. The warning threshold is a heuristic:
nnU-Net 3d_fullres inference on BATseg's 12 x 384 x 384 patches needs a few GiB; below
LOW_MEMORY_MIB free the engine may run out of memory (it then falls back to the CPU, slowly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from BATsegSlicerLib.commands import child_environment
from BATsegSlicerLib.process import ChildProcess

LOW_MEMORY_MIB = 6 * 1024
PROBE_PREFIX = "BATSEG_GPU "
PROBE_CODE = (
    "import json\n"
    "info = {'torch': False, 'cuda': False}\n"
    "try:\n"
    "    import torch\n"
    "    info['torch'] = True\n"
    "    info['torch_version'] = torch.__version__\n"
    "    if torch.cuda.is_available():\n"
    "        free, total = torch.cuda.mem_get_info(0)\n"
    "        info.update(cuda=True, name=torch.cuda.get_device_name(0), free_mib=free // 2**20, total_mib=total // 2**20)\n"
    "except Exception as error:\n"
    "    info['error'] = str(error).splitlines()[0] if str(error) else type(error).__name__\n"
    f"print({PROBE_PREFIX!r} + json.dumps(info), flush=True)\n"
)


@dataclass(frozen=True)
class GpuInfo:
    """The probe's answer."""

    torch: bool
    cuda: bool
    name: str = ""
    free_mib: int = 0
    total_mib: int = 0
    error: str = ""

    def warning(self, device: str) -> str | None:
        """A one-line warning for the chosen device ("auto", "cpu", "cuda"), or None."""
        if device == "cpu":
            return None
        if not self.torch:
            return "PyTorch is not installed yet: install the dependencies first"
        if not self.cuda:
            if device == "cuda":
                return "no CUDA GPU is available to PyTorch: choose CPU (slower) or auto"
            return "no CUDA GPU found: the segmentation will run on the CPU (slower)"
        if self.free_mib < LOW_MEMORY_MIB:
            return (f"GPU {self.name} has only {self.free_mib} MiB free (about {LOW_MEMORY_MIB} needed): "
                    "close other GPU programs, or it may run out of memory and fall back to the CPU")
        return None

    def describe(self) -> str:
        if self.cuda:
            return f"{self.name}: {self.free_mib} of {self.total_mib} MiB free"
        return "no CUDA GPU" if self.torch else "PyTorch not installed"


def probe_process(python: str) -> ChildProcess:
    """The child process that answers the probe (start it, then read with `parse_probe`)."""
    return ChildProcess([python, "-c", PROBE_CODE], env=child_environment())


def parse_probe(lines: list[str]) -> GpuInfo:
    """The GpuInfo in the probe's output lines (no torch, if the line is missing)."""
    for line in lines:
        if line.startswith(PROBE_PREFIX):
            data = json.loads(line[len(PROBE_PREFIX):])
            return GpuInfo(torch=bool(data.get("torch")), cuda=bool(data.get("cuda")), name=str(data.get("name", "")),
                           free_mib=int(data.get("free_mib", 0)), total_mib=int(data.get("total_mib", 0)),
                           error=str(data.get("error", "")))
    return GpuInfo(torch=False, cuda=False, error="the GPU probe printed no answer")
