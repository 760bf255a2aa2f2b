"""Shared pieces of the inference tests: a random-weight light model, test images, a CLI runner.

The model (light topology, random weights, written with `batseg.models.write_untrained_model`)
and its ONNX export are made once per test process in a temporary folder removed at exit, so
every inference test file reuses them. Images are small (model grids of a few thousand voxels)
so each prediction takes milliseconds.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# The real healthy scans of ../shared (not in a clone: tests on them skip with the reason).
# BATSEG_TEST_SHARED names another shared folder, or a missing one (BATSEG_TEST_SHARED=missing)
# to run the suite as a clone does; Testing/slicer_module/conftest.py follows the same rule.
SHARED = Path(os.environ.get("BATSEG_TEST_SHARED") or Path(__file__).resolve().parents[2] / "shared")
REAL_DATA = SHARED / "data" / "real-spine-mri"

# Sagittal PIR: i toward posterior, j toward inferior, k toward right (the model's own axes).
PIR_DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


@functools.lru_cache(maxsize=None)
def work_dir() -> Path:
    """A temporary folder for this test process (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="batseg-inference-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.lru_cache(maxsize=None)
def light_model() -> Path:
    """A light-topology model file with random weights (seed 0)."""
    from batseg.models import write_untrained_model

    return write_untrained_model(work_dir() / "untrained-light.batseg", "light", seed=0)


def cache_dir() -> Path:
    """The ONNX cache folder shared by this process's tests."""
    return work_dir() / "cache"


@functools.lru_cache(maxsize=None)
def predictor(backend: str = "onnx", tile: str = "auto"):
    """A Predictor over the random light model (one per backend / tile mode)."""
    from batseg.inference.predictor import Predictor

    return Predictor(light_model(), device="cpu", backend=backend, threads=2, tile=tile, cache_folder=cache_dir())


def rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation about an LPS axis."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrix = np.eye(3)
    a, b = [i for i in range(3) if i != axis]
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
    return matrix


def smooth_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth random float32 volume with a bright blob (a stand-in for anatomy), values 0-1000."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    volume = gaussian_filter(rng.normal(size=shape), sigma=(0.7, 3.0, 3.0))
    z, y, x = np.indices(shape)
    centre = [s / 2 for s in shape]
    volume += 3 * volume.std() * np.exp(-(((z - centre[0]) / 2) ** 2 + ((y - centre[1]) / 8) ** 2 + ((x - centre[2]) / 8) ** 2))
    volume = (volume - volume.min()) / (volume.max() - volume.min()) * 1000
    return volume.astype(np.float32)


def make_image(
    array: np.ndarray,
    spacing: tuple[float, float, float] = (0.5, 0.5, 3.6),
    direction: np.ndarray | tuple = PIR_DIRECTION,
    origin: tuple[float, float, float] = (12.5, -40.25, 80.0),
) -> sitk.Image:
    """An image from a (k, j, i) array with the given SimpleITK geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(tuple(float(v) for v in np.asarray(direction, dtype=float).ravel()))
    image.SetOrigin(origin)
    return image


def sagittal_image(shape: tuple[int, int, int] = (10, 64, 56), seed: int = 0, oblique_degrees: float = 0.0) -> sitk.Image:
    """A sagittal PIR volume (3.6 mm slices, 0.5 mm in-plane), optionally rotated about LR and SI."""
    direction = np.asarray(PIR_DIRECTION).reshape(3, 3)
    if oblique_degrees:
        direction = rotation(0, oblique_degrees) @ rotation(2, oblique_degrees / 2) @ direction
    return make_image(smooth_volume(shape, seed), direction=direction)


def reorient_image(image: sitk.Image, mapping) -> sitk.Image:
    """The image with its voxels permuted / flipped by `mapping` (an `AxisMapping`), no interpolation.

    Voxels and spacing come from the mapping itself (`to_model`, `spacing_to_model`, what
    inference runs), so comparing this image with `sitk.DICOMOrient` checks the product's code;
    the origin and direction, which inference never needs (it maps its outputs back instead),
    are derived here.
    """
    from batseg.inference.orientation import direction_matrix

    direction, size_zyx = direction_matrix(image), image.GetSize()[::-1]
    new_direction = np.zeros((3, 3))
    corner_zyx = [0.0, 0.0, 0.0]  # the input index that becomes the model grid's first voxel
    for axis, (source, flip) in enumerate(zip(mapping.order, mapping.flip)):
        new_direction[:, 2 - axis] = (-1.0 if flip else 1.0) * direction[:, 2 - source]
        if flip:
            corner_zyx[source] = size_zyx[source] - 1.0
    out = sitk.GetImageFromArray(np.ascontiguousarray(mapping.to_model(sitk.GetArrayViewFromImage(image))))
    out.SetOrigin(image.TransformContinuousIndexToPhysicalPoint(corner_zyx[::-1]))
    out.SetSpacing(mapping.spacing_to_model(image.GetSpacing()[::-1])[::-1])
    out.SetDirection(tuple(new_direction.ravel()))
    return out


def write_image(image: sitk.Image, path: Path) -> Path:
    """Write `image` the way `batseg predict` writes its outputs (`image_writer`, all or nothing)."""
    from batseg.atomic_files import write_all_or_nothing
    from batseg.io import image_suffix, image_writer

    write_all_or_nothing([(path, image_writer(image), image_suffix(path))], overwrite=False)
    return path


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images have exactly the same origin, spacing, direction and size."""
    return (
        a.GetOrigin() == b.GetOrigin()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetDirection() == b.GetDirection()
        and a.GetSize() == b.GetSize()
    )


def run_cli(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m batseg ...` in a child process with the shared ONNX cache (unless `env_extra` names another)."""
    env = {**os.environ, "BATSEG_CACHE_DIR": str(cache_dir()), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "batseg", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_predict_refuses(path: Path, out: Path, capfd) -> None:
    """`batseg predict` (in this process) on `path` exits 2 with one error line, no traceback, and
    leaves `out` without any file."""
    from batseg.cli import main

    status = main(["predict", "-i", str(path), "-o", str(out), "--model", str(light_model()), "--progress", "quiet"])
    captured = capfd.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batseg: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists() or not any(out.iterdir())


def cord_in_canal(fluid: float, cord: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """A cylinder of cord in a canal of fluid in tissue, on a 1 mm grid (rows along the cord): the
    volume and the cord mask, for the contrast check (fluid brighter than the cord reads T2)."""
    z, y, x = np.mgrid[:30, :60, :40]
    radius = np.hypot(z - 15, x - 20)
    volume = np.full(z.shape, 60.0, np.float32)
    volume[radius < 9] = fluid
    mask = radius < 4
    volume[mask] = cord
    noise = np.random.default_rng(0).normal(0, 3, volume.shape)
    return (volume + noise).astype(np.float32), mask
