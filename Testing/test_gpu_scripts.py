"""The GPU checks' scripts run (on the CPU, tiny) without SimpleITK, as on the lent GPU machine.

`scripts/gpu/checks.sh` runs them where SimpleITK is replaced by `scripts/gpu/placeholder`
(its wheel does not fit in the transfer). Device time is scarce: a script broken by a change
here must fail in CI, not on the GPU machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_without_simpleitk(*args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "scripts" / "gpu" / "placeholder"),
                                                       str(REPO / "BATsegSlicer")]))
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_placeholder_stands_in_for_simpleitk_and_fails_on_use() -> None:
    out = _run_without_simpleitk("-c", "import SimpleITK\ntry:\n    SimpleITK.ReadImage\nexcept RuntimeError as e:\n    print(e)")
    assert "not installed on this machine" in out


def test_gpu_inference_benchmark_runs_on_cpu() -> None:
    out = _run_without_simpleitk("scripts/bench_gpu_inference.py", "--device", "cpu", "--topology", "light",
                                 "--size", "6", "48", "40", "--warmup", "0", "--repeats", "1")
    assert "BATseg Predictor.predict_grid" in out and out.count("speed-up over") == 2


def test_training_step_benchmark_runs_on_cpu() -> None:
    out = _run_without_simpleitk("scripts/bench_train_step.py", "--device", "cpu", "--batch", "1", "--patch",
                                 "16", "32", "32", "--warmup", "0", "--repeats", "1", "--da-samples", "1",
                                 "--workers", "1", "--threads", "2")
    assert "ratio BATseg, free target / plain" in out


def test_handover_benchmark_runs_on_cpu() -> None:
    out = _run_without_simpleitk("scripts/bench_handover.py", "--batch", "1", "--patch", "4", "16", "16",
                                 "--repeats", "1")
    assert out.count(" MB  median ") == 3 and "labels exact True" in out
