"""The panel's GPU check (BATsegSlicerLib/gpu_probe.py) through its states (issue 20, item 11):
no torch, probing, the answer (a GPU with enough or too little memory, none, no answer), a child
that cannot start, and cancelling when the panel closes; and the device line for each device.
The children are real processes printing the probe's answer line (torch is never imported)."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

from BATsegSlicerLib.gpu import PROBE_PREFIX
from BATsegSlicerLib.gpu_probe import CHECKING, TORCH_MISSING, GpuProbe, ProbeState
from BATsegSlicerLib.process import ChildProcess

GPU = {"torch": True, "cuda": True, "name": "NVIDIA T1000", "free_mib": 7000, "total_mib": 8000}


def answering(answer: dict | None, delay: float = 0.0):
    """A probe child (python -> process) that prints `answer` as the probe does (None: prints nothing)."""
    line = "" if answer is None else f"print({PROBE_PREFIX + json.dumps(answer)!r})"
    code = f"import time; time.sleep({delay}); {line}"
    return lambda python: ChildProcess([sys.executable, "-c", code])


def poll_until_answered(probe: GpuProbe, timeout: float = 60) -> int:
    """Poll as the panel's timer does; the number of polls that reported a new answer."""
    answers, deadline = 0, time.monotonic() + timeout
    while probe.probing:
        assert time.monotonic() < deadline, "the probe did not answer"
        answers += probe.poll()
        time.sleep(0.02)
    return answers + probe.poll()


def test_no_torch_means_no_child_and_says_so():
    asked = []
    probe = GpuProbe(torch_missing=lambda: True, process=lambda python: asked.append(python))
    assert probe.start(lambda: asked.append("python") or "python") is ProbeState.NO_TORCH
    assert asked == []  # neither the interpreter nor a child
    assert probe.warning("auto") == TORCH_MISSING == "PyTorch is not installed yet: see Dependencies below"
    assert probe.warning("cpu") == TORCH_MISSING and probe.cuda is None
    assert not probe.probing and probe.poll() is False


def test_a_gpu_answer_with_enough_memory_is_described():
    probe = GpuProbe(torch_missing=lambda: False, process=answering(GPU, delay=0.3))
    assert probe.warning("auto") == ""  # before the check starts: nothing to say
    assert probe.start(lambda: "python") is ProbeState.PROBING
    assert probe.probing and probe.warning("auto") == CHECKING == "Checking the GPU..." and probe.cuda is None
    assert poll_until_answered(probe) == 1  # the device line is re-drawn once
    assert probe.state is ProbeState.DONE and probe.cuda is True
    assert probe.warning("auto") == probe.warning("cuda") == "NVIDIA T1000: 7000 of 8000 MiB free"
    assert probe.warning("cpu") == "NVIDIA T1000: 7000 of 8000 MiB free"


def test_low_memory_and_no_gpu_warn_for_the_devices_that_would_use_it():
    low = GpuProbe(torch_missing=lambda: False, process=answering({**GPU, "free_mib": 1000}))
    low.start(lambda: "python")
    poll_until_answered(low)
    assert "only 1000 MiB free" in low.warning("cuda") and "only 1000 MiB free" in low.warning("auto")
    assert low.warning("cpu") == "NVIDIA T1000: 1000 of 8000 MiB free"
    none = GpuProbe(torch_missing=lambda: False, process=answering({"torch": True, "cuda": False}))
    none.start(lambda: "python")
    poll_until_answered(none)
    assert none.cuda is False
    assert none.warning("cuda") == "no CUDA GPU is available to PyTorch: choose CPU (slower) or auto"
    assert none.warning("auto") == "no CUDA GPU found: the segmentation will run on the CPU (slower)"
    assert none.warning("cpu") == "no CUDA GPU"


def test_a_child_without_an_answer_and_one_that_cannot_start():
    silent = GpuProbe(torch_missing=lambda: False, process=answering(None))
    silent.start(lambda: "python")
    poll_until_answered(silent)
    assert silent.state is ProbeState.DONE and silent.info.error == "the GPU probe printed no answer"
    assert silent.warning("auto") == "PyTorch is not installed yet: install the dependencies first"

    def missing_interpreter(python):
        raise FileNotFoundError(f"no such interpreter: {python}")

    failed = GpuProbe(torch_missing=lambda: False, process=missing_interpreter)
    assert failed.start(lambda: "/nowhere/python") is ProbeState.FAILED
    assert failed.failure == "GPU check failed: no such interpreter: /nowhere/python"
    assert failed.warning("auto") == "" and failed.poll() is False and not failed.probing


def test_the_default_child_runs_the_probe_code_with_the_engines_interpreter(tmp_path: Path):
    """gpu.probe_process (the default) runs `python -c PROBE_CODE`: an interpreter that answers."""
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\nprint({PROBE_PREFIX + json.dumps(GPU)!r})\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    probe = GpuProbe(torch_missing=lambda: False)
    assert probe.start(lambda: str(python)) is ProbeState.PROBING
    poll_until_answered(probe)
    assert probe.info.name == "NVIDIA T1000" and probe.cuda


def test_closing_the_panel_stops_a_running_check_and_the_line_follows_an_install():
    installed = {"torch": False}
    probe = GpuProbe(torch_missing=lambda: not installed["torch"], process=answering(GPU, delay=60))
    assert probe.start(lambda: "python") is ProbeState.NO_TORCH
    installed["torch"] = True  # installed meanwhile (the probe starts again with the next panel)
    assert probe.warning("auto") == ""
    assert probe.start(lambda: "python") is ProbeState.PROBING
    process = probe._process
    probe.cancel()
    assert probe.state is ProbeState.CANCELLED and process.returncode is not None and not probe.probing
    assert probe.poll() is False and probe.warning("auto") == ""
