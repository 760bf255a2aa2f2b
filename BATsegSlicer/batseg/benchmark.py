"""`batseg benchmark`: end-to-end time and peak memory of BATseg's predictor vs nnU-Net v2's.

What is measured (decisions):
- The input is a clinical-like sagittal volume file (default 15 x 512 x 512 voxels of
  3.6 x 0.5 x 0.5 mm, slices x superior-inferior x anterior-posterior): a `batseg.phantoms`
  case resampled onto exactly that grid (PIR with the phantom's small obliquity), or, where the
  phantom package is missing, a smooth random int16 volume with a body-shaped mask. Every
  stage's cost depends on the grid, not on the anatomy, except postprocessing and the report,
  which depend on what the model labels (see the model bullet); the output names the volume.
- The model: `--model`, else the shipped default model, else a model of `--topology` with
  random weights written for the run (the output says so: its timings are real, its labels
  meaningless). The untrained network labels most voxels as tumour, the worst case for
  postprocessing and the report; `--untrained-output background` makes its last layer predict
  background everywhere (no lesion: the best case). A trained model's few small lesions lie
  between the two, near the second.
- Every run is a fresh child process doing the whole job from the file: `batseg predict`
  (read, preprocess, predict, resample back, postprocess, report, write the label map and the
  report), and nnU-Net's `nnUNetPredictor.predict_from_files_sequential` with the same network
  and weights (`batseg.nnunet_reference`: read, preprocess, predict, export the label map; it
  writes no report), both with the same number of threads and without mirroring. Nothing is
  reused between runs except, for BATseg, the ONNX export cache: the first BATseg run starts
  with an empty cache ("cold", export included) and is reported apart from the warm runs.
- Time is the child's wall-clock time from start to exit (interpreter start and imports
  included). Peak memory is the child's own high-water mark of resident memory, which each
  child prints at its end (`memory.peak_resident_bytes`: VmHWM on Linux); `os.wait4`'s
  ru_maxrss is the fallback, and is not used first because Linux counts in it the resident
  size of the parent the child was spawned from.
- The speed-up is nnU-Net's median divided by BATseg's warm median. nnU-Net slides the model's
  training patch over the volume (its behaviour, and what a user of its predictor gets); BATseg's
  default tile is the whole volume. To show how much of the speed-up that one lever accounts
  for, nnU-Net is timed a second time with BATseg's tile as its patch ("same tile" row), and
  the speed-up over that run is reported too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import SimpleITK as sitk

from batseg.errors import BATsegError
from batseg.nnunet_reference import RESULT_PREFIX as NNUNET_PREFIX
from batseg.progress import JSON_PREFIX

OBLIQUITY_DEGREES = 3.0
PHANTOM_SEED = 7  # one fixed case, so that every benchmark times the same volume
CORD_MASK_NAME = "benchmark_case_cord.nii.gz"  # the phantom's cord mask, for --crop-to-cord


@dataclass
class Settings:
    """Options of one benchmark run."""

    model: str | None = None
    topology: str = "light"
    device: str = "cpu"
    size: tuple[int, int, int] = (15, 512, 512)  # slices, superior-inferior, anterior-posterior
    spacing: tuple[float, float, float] = (3.6, 0.5, 0.5)  # mm, same order
    repeats: int = 3
    skip_nnunet: bool = False
    threads: int | None = None
    backend: str = "auto"
    tile: str = "auto"
    untrained_output: str = "random"  # or "background" (see the module docstring)
    crop_to_cord: float | None = None  # BATseg runs with --crop-to-cord MARGIN (None: --no-crop, whole volume)
    cord_source: str = "locator"  # with crop_to_cord: the cord locator's mask, or "mask": the phantom's cord mask


@dataclass
class ChildRun:
    """One child process: wall time, peak memory, and what it printed."""

    seconds: float
    peak_bytes: int
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _sagittal_direction(degrees: float = OBLIQUITY_DEGREES) -> tuple[float, ...]:
    """PIR (i posterior, j inferior, k right) turned by `degrees` about the left-right axis."""
    angle = np.radians(degrees)
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    pir = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return tuple((turn @ pir).ravel())


def synthetic_volume(size: Sequence[int], spacing: Sequence[float], seed: int = 0) -> sitk.Image:
    """A smooth random int16 volume on a sagittal grid (stand-in anatomy for timing only).

    Array order (slices, superior-inferior, anterior-posterior); intensities 0-1000 with a
    body-shaped mask, smooth texture and noise, so that z-scoring and resampling do real work.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in size)
    sigma = [max(0.5, 4.0 / float(s)) for s in spacing]
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    texture /= texture.std() + 1e-6
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij")
    body = (x / 0.8) ** 2 + (z / 1.1) ** 2 < 1.0
    values = np.where(body, 450 + 120 * texture, 20) + rng.normal(0, 15, shape)
    image = sitk.GetImageFromArray(np.clip(values, 0, 1000).astype(np.int16))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    image.SetDirection(_sagittal_direction())
    image.SetOrigin((-0.5 * shape[0] * spacing[0], -0.5 * shape[2] * spacing[2], 0.5 * shape[1] * spacing[1]))
    return image


def phantom_volume(size: Sequence[int], spacing: Sequence[float], seed: int = PHANTOM_SEED) -> tuple[sitk.Image, str]:
    """`phantom_case` without its cord mask."""
    image, _, description = phantom_case(size, spacing, seed)
    return image, description


def phantom_case(size: Sequence[int], spacing: Sequence[float], seed: int = PHANTOM_SEED
                 ) -> tuple[sitk.Image, sitk.Image, str]:
    """A `batseg.phantoms` case resampled (linear) onto the requested grid, centred on the phantom.

    The phantom generator draws its own field of view, pixel size and slice spacing (only the
    matrix and the slice count can be chosen), so the case is generated with the requested
    matrix and slices and then resampled onto exactly the requested size and spacing, keeping
    the phantom's (slightly oblique, PIR) direction; voxels outside its field of view are 0.
    The phantom's spinal cord mask comes with it on the same grid (nearest neighbour).
    """
    from batseg.phantoms import generate_case

    case = generate_case(seed, matrix=int(size[1]), n_slices=int(size[0]))
    image = case.image
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    new_size = [int(size[2]), int(size[1]), int(size[0])]  # SimpleITK (AP i, SI j, LR k)
    new_spacing = [float(spacing[2]), float(spacing[1]), float(spacing[0])]
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    origin = centre - direction @ (np.asarray(new_spacing) * (np.asarray(new_size) - 1) / 2)
    grid = (new_size, sitk.Transform(), sitk.sitkLinear, tuple(origin), new_spacing, tuple(direction.ravel()), 0)
    resampled = sitk.Resample(image, *grid, image.GetPixelID())
    cord = sitk.Resample(case.cord, *grid[:2], sitk.sitkNearestNeighbor, *grid[3:], sitk.sitkUInt8)
    types = ", ".join(lesion["name"] for lesion in case.meta["lesions"]) or "no tumour"
    described = f"synthetic phantom (batseg.phantoms seed {seed}: {case.meta['region']}, {types})"
    return resampled, cord, f"{described} resampled to this grid"


def benchmark_volume(folder: Path, settings: Settings) -> tuple[Path, str]:
    """Write the input volume: a phantom when `batseg.phantoms` is installed, else a smooth random
    volume; returns its path and a description of what it is."""
    try:
        image, cord, description = phantom_case(settings.size, settings.spacing)
    except ImportError:
        if settings.crop_to_cord is not None and settings.cord_source == "mask":
            raise BATsegError("--cord-source mask needs the phantom's cord mask: install batseg with its phantoms") from None
        image, cord = synthetic_volume(settings.size, settings.spacing), None
        description = "smooth random volume with a body-shaped mask (batseg.phantoms is not installed)"
    path = folder / "benchmark_case.nii.gz"
    sitk.WriteImage(image, str(path))
    if cord is not None:
        sitk.WriteImage(cord, str(folder / CORD_MASK_NAME))
    return path, description


def benchmark_model(folder: Path, settings: Settings, log: Callable[[str], None]) -> tuple[Path, str]:
    """The model to time and a description (given, shipped, or untrained written here)."""
    from batseg.model_file import read_manifest
    from batseg.models import default_model_path, resolve_model, write_untrained_model

    if settings.model:
        path = resolve_model(settings.model)
        return path, f"{read_manifest(path).get('name')} ({path})"
    try:
        path = default_model_path()
        return path, f"{read_manifest(path).get('name')} (the shipped default model)"
    except BATsegError:
        pass
    background = settings.untrained_output == "background"
    path = write_untrained_model(
        folder / f"untrained-{settings.topology}.batseg", settings.topology, background_only=background
    )
    log(f"no --model given and no shipped model found: using a {settings.topology} model with random weights")
    output = "last layer set to predict background only" if background else "labels most voxels as tumour"
    return path, f"untrained {settings.topology} topology, random weights, {output} (no --model, no shipped model)"


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------


def run_child(command: list[str], env: dict[str, str], timeout: float = 1800) -> ChildRun:
    """Run a command: its wall time, its peak resident memory (as it reports it, else ru_maxrss) and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        returncode, peak = _wait(process, start + timeout)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    events = []
    for line in stdout.splitlines():
        for prefix in (JSON_PREFIX, NNUNET_PREFIX):
            if line.startswith(prefix):
                events.append(json.loads(line[len(prefix):]))
    reported = [e["peak_memory_mb"] for e in events if "peak_memory_mb" in e]
    if reported:
        peak = int(max(reported) * 1024**2)
    return ChildRun(seconds, int(peak), returncode, stdout, stderr, events)


def _wait(process: subprocess.Popen, deadline: float) -> tuple[int, int]:
    """Wait for a child: (exit status, its ru_maxrss in bytes, 0 where os.wait4 does not exist)."""
    if not hasattr(os, "wait4"):  # Windows: the child's own report is the only figure
        try:
            return process.wait(timeout=max(0.0, deadline - time.perf_counter())), 0
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(), 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.01)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return process.returncode, int(peak)


def _checked(run: ChildRun, what: str) -> ChildRun:
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise BATsegError(f"the {what} run failed (exit {run.returncode}): {last}")
    return run


def batseg_command(volume: Path, out: Path, model: Path, settings: Settings) -> list[str]:
    command = [
        sys.executable, "-m", "batseg", "predict", "-i", str(volume), "-o", str(out), "--model", str(model),
        "--device", settings.device, "--backend", settings.backend, "--tile", settings.tile, "--progress", "json",
    ]
    if settings.threads:
        command += ["--threads", str(settings.threads)]
    if settings.crop_to_cord is None:
        command += ["--no-crop", "--no-cord-locator"]  # the whole volume, as nnU-Net's predictor does
    else:
        command += ["--crop-to-cord", f"{settings.crop_to_cord:g}"]
        if settings.cord_source == "mask":
            command += ["--cord-masks", str(volume.parent / CORD_MASK_NAME)]
    return command


def nnunet_command(
    volume: Path, out: Path, model: Path, settings: Settings, patch: Sequence[int] | None = None
) -> list[str]:
    command = [
        sys.executable, "-m", "batseg.nnunet_reference", "--model", str(model), "-i", str(volume),
        "-o", str(out / "nnunet.nii.gz"), "--device", settings.device,
    ]
    if settings.threads:
        command += ["--threads", str(settings.threads)]
    if patch is not None:
        command += ["--patch", *(str(int(p)) for p in patch)]
    return command


def _batseg_tile(runs: list[ChildRun]) -> list[int] | None:
    """The sliding-window tile BATseg used (from its result event), if it reported one."""
    for run in runs:
        for event in run.events:
            tile = (event.get("details") or {}).get("tile") if event.get("event") == "result" else None
            if tile:
                return [int(t) for t in tile]
    return None


def _time_nnunet(
    volume: Path, folder: Path, model: Path, settings: Settings, env: dict[str, str],
    log: Callable[[str], None], label: str, patch: Sequence[int] | None = None,
) -> list[ChildRun]:
    """`settings.repeats` fresh nnU-Net predictor processes on the volume."""
    runs = []
    for index in range(settings.repeats):
        log(f"nnU-Net run {index + 1} of {settings.repeats} ({label})")
        out = folder / f"nnunet_{label.replace(' ', '_')}_{index}"
        out.mkdir()
        runs.append(_checked(run_child(nnunet_command(volume, out, model, settings, patch), env), "nnU-Net"))
    return runs


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def _row(name: str, runs: list[ChildRun]) -> dict[str, Any]:
    seconds = [r.seconds for r in runs]
    return {
        "pipeline": name,
        "runs": len(runs),
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "peak_mb": max(r.peak_bytes for r in runs) / 1024**2,
    }


def _stage_medians(runs: list[ChildRun]) -> dict[str, float]:
    per_stage: dict[str, list[float]] = {}
    for run in runs:
        for event in run.events:
            if event.get("event") == "result":
                for stage, seconds in event.get("timings", {}).items():
                    per_stage.setdefault(stage, []).append(float(seconds))
    return {stage: statistics.median(values) for stage, values in per_stage.items()}


def _crop_line(summary: dict[str, Any]) -> list[str]:
    margin = summary.get("crop_to_cord_mm")
    if margin is None:
        return []
    if summary.get("cord_source") == "mask":
        return [f"crop:    BATseg gets the phantom's cord mask and segments a box around it (margin {margin:g} mm; "
                "the mask's own cost is not timed); nnU-Net predicts the whole volume"]
    return [f"crop:    BATseg finds the cord with its cord locator (timed) and segments a box around it (margin "
            f"{margin:g} mm); nnU-Net predicts the whole volume"]


def format_table(summary: dict[str, Any]) -> str:
    """The human-readable benchmark table."""
    lines = [
        "BATseg benchmark (research software; not for clinical use)",
        f"volume:  {summary['volume']}",
        f"model:   {summary['model']}",
        f"setting: device {summary['device']}, {summary['threads']} threads, backend {summary['backend']}, "
        f"tile {summary['tile']}; every run is a fresh process from the file to the written outputs",
        *_crop_line(summary),
        "",
        f"{'pipeline':<44}{'runs':>5}{'min s':>9}{'median s':>10}{'peak MB':>10}",
    ]
    for row in summary["rows"]:
        lines.append(
            f"{row['pipeline']:<44}{row['runs']:>5}{row['min_s']:>9.2f}{row['median_s']:>10.2f}{row['peak_mb']:>10.0f}"
        )
    if summary.get("speedup") is not None:
        lines.append(f"speed-up (nnU-Net median / BATseg warm median): {summary['speedup']:.2f}x")
    if summary.get("speedup_same_tile") is not None:
        lines.append(f"speed-up over nnU-Net given BATseg's tile (same-tile median / BATseg warm median): "
                     f"{summary['speedup_same_tile']:.2f}x")
    stages = summary.get("batseg_stage_medians_s") or {}
    if stages:
        lines.append("BATseg stages, median of warm runs (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return "\n".join(lines)


def run_benchmark(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the benchmark (module docstring) and return its summary."""
    if settings.repeats < 1:
        raise BATsegError("--repeats must be at least 1")
    threads = settings.threads or os.cpu_count() or 1
    settings.threads = threads
    with tempfile.TemporaryDirectory(prefix="batseg-benchmark-") as tmp:
        folder = Path(tmp)
        volume, volume_description = benchmark_volume(folder, settings)
        model, model_description = benchmark_model(folder, settings, log)
        env = dict(os.environ, BATSEG_CACHE_DIR=str(folder / "cache"), PYTHONWARNINGS="ignore")
        batseg_runs = []
        for index in range(settings.repeats + 1):
            log(f"BATseg run {index + 1} of {settings.repeats + 1}{' (cold ONNX cache)' if index == 0 else ''}")
            out = folder / f"batseg_{index}"
            batseg_runs.append(_checked(run_child(batseg_command(volume, out, model, settings), env), "batseg predict"))
        rows = [_row("batseg predict, first run (cold ONNX cache)", batseg_runs[:1]),
                _row("batseg predict, warm runs", batseg_runs[1:])]
        speedup = speedup_same_tile = None
        if not settings.skip_nnunet:
            nnunet_runs = _time_nnunet(volume, folder, model, settings, env, log, "training patch")
            rows.append(_row("nnU-Net v2 nnUNetPredictor (no mirroring)", nnunet_runs))
            speedup = rows[-1]["median_s"] / rows[1]["median_s"]
            tile = _batseg_tile(batseg_runs[1:])
            if tile is not None:
                same_tile = _time_nnunet(volume, folder, model, settings, env, log, "same tile", tile)
                rows.append(_row(f"nnU-Net v2, same tile {' x '.join(map(str, tile))}", same_tile))
                speedup_same_tile = rows[-1]["median_s"] / rows[1]["median_s"]
    size = " x ".join(map(str, settings.size))
    spacing = " x ".join(f"{s:g}" for s in settings.spacing)
    return {
        "volume": f"{size} voxels of {spacing} mm (slices x SI x AP), sagittal; {volume_description}",
        "model": model_description,
        "device": settings.device,
        "threads": threads,
        "backend": settings.backend,
        "tile": settings.tile,
        "crop_to_cord_mm": settings.crop_to_cord,
        "cord_source": settings.cord_source if settings.crop_to_cord is not None else None,
        "rows": rows,
        "speedup": speedup,
        "speedup_same_tile": speedup_same_tile,
        "batseg_stage_medians_s": _stage_medians(batseg_runs[1:]),
    }
