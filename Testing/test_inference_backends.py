"""Backends, sliding window, test-time augmentation, ONNX cache and the GPU out-of-memory fallback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.errors import BATsegError
from batseg.inference import backends, sliding_window
from batseg.inference.predictor import Predictor, mirror_combinations
from batseg.inference.sliding_window import (
    DEFAULT_STEP,
    SIGMA_SCALE,
    choose_tile,
    gaussian_importance,
    plan_windows,
    predict_windows,
    tile_starts,
)
from batseg.progress import Progress
from inference_helpers import cache_dir, light_model, make_image, predictor, sagittal_image, smooth_volume, work_dir


def test_torch_and_onnx_backends_agree() -> None:
    image = sagittal_image((12, 90, 70), seed=2, oblique_degrees=6.0)
    onnx = predictor("onnx").predict(image, probabilities=True, field=True)
    torch = predictor("torch").predict(image, probabilities=True, field=True)
    assert onnx.details["backend"] == "onnx" and torch.details["backend"] == "torch"
    # Random weights: logits near ties everywhere amplify float32 rounding; the image is smaller
    # than the training patch, so the whole scan is one zero-padded patch (nnU-Net's tiling).
    assert np.abs(onnx.probabilities - torch.probabilities).max() < 5e-3
    assert np.abs(onnx.field - torch.field).max() < 5e-3
    same = sitk.GetArrayViewFromImage(onnx.labels) == sitk.GetArrayViewFromImage(torch.labels)
    assert same.mean() > 0.999  # only near-ties may differ


def test_sliding_window_blending_is_a_weighted_mean_of_the_tiles() -> None:
    """A runner echoing its tile must give back the volume itself, whatever the tiling."""
    volume = smooth_volume((11, 45, 37), seed=1)

    def echo(tile: np.ndarray):
        return np.concatenate([tile, 2 * tile], axis=1), tile + 1

    for tile, step in (((4, 16, 16), 0.5), ((8, 32, 16), 0.25), ((16, 64, 48), 0.5), ((2, 16, 16), 1.0)):
        plan = plan_windows(volume.shape, tile, step)
        logits, field = predict_windows(volume, echo, plan)
        np.testing.assert_allclose(logits[0], volume, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(logits[1], 2 * volume, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(field[0], volume + 1, rtol=1e-5, atol=1e-3)
    assert plan_windows(volume.shape, (4, 16, 16), 0.5).count == 5 * 5 * 4


def test_tile_positions_gaussian_and_tile_choice() -> None:
    assert tile_starts(100, 40, 0.5) == [0, 20, 40, 60]
    assert tile_starts(30, 40, 0.5) == [0]
    starts = tile_starts(272, 160, 0.5)
    assert starts[0] == 0 and starts[-1] == 112 and max(np.diff(starts)) <= 80
    weights = gaussian_importance((8, 16, 12))
    assert weights[4, 8, 6] == pytest.approx(1.0) and weights.min() > 0
    assert weights[4, 8, 6] > weights[4, 8, 1] > weights[4, 8, 0]
    # auto: the whole volume rounded up to the downsampling, unless over the voxel budget
    assert choose_tile((16, 272, 272), (16, 160, 160), (2, 16, 16), "auto", 2_000_000) == (16, 272, 272)
    assert choose_tile((15, 100, 70), (16, 160, 160), (2, 16, 16), "auto", 2_000_000) == (16, 112, 80)
    shrunk = choose_tile((40, 600, 600), (16, 160, 160), (2, 16, 16), "auto", 2_000_000)
    assert np.prod(shrunk) <= 2_000_000 and all(t >= p // 2 for t, p in zip(shrunk, (16, 160, 160)))
    # over the budget: the tile with the fewest voxels computed in all, tried against every other
    paper = choose_tile((16, 545, 545), (12, 384, 384), (2, 64, 64), "auto", 1_258_291)
    assert paper == (16, 192, 384)
    cost = lambda tile: plan_windows((16, 545, 545), tile).count * np.prod(tile)  # noqa: E731
    assert cost(paper) < cost((12, 384, 384)) and cost(paper) <= cost((16, 256, 256))
    assert plan_windows((16, 545, 545), paper).count == 10
    assert choose_tile((40, 600, 600), (16, 160, 160), (2, 16, 16), "patch") == (16, 160, 160)
    # the whole scan: the training patch (nnU-Net's tiling) when it fits the budget, else the cheapest tile
    assert choose_tile((16, 272, 272), (16, 64, 64), (2, 16, 16), "auto", 2_000_000, whole_volume=True) == (16, 64, 64)
    assert choose_tile((16, 545, 545), (12, 384, 384), (2, 64, 64), "auto", 1_258_291, whole_volume=True) == paper
    with pytest.raises(BATsegError, match="multiple"):
        choose_tile((16, 64, 64), (16, 160, 160), (2, 16, 16), (15, 64, 64))


# Our numpy copies of nnU-Net's sliding window (ONNX inference does not import torch) are
# pinned to nnU-Net's own functions and defaults, so a drift on either side fails here.
SIZES_AND_TILES = [((16, 272, 272), (16, 160, 160)), ((12, 100, 90), (8, 64, 64)), ((13, 33, 47), (13, 16, 16)),
                   ((9, 110, 64), (4, 64, 64)), ((40, 600, 600), (16, 160, 160)), ((7, 5, 161), (2, 5, 32))]


@pytest.mark.parametrize("size, tile", SIZES_AND_TILES)
@pytest.mark.parametrize("step", [DEFAULT_STEP, 0.25, 0.33, 0.7, 1.0])
def test_tile_starts_equal_nnunet_steps(size, tile, step) -> None:
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    ours = [tile_starts(n, t, step) for n, t in zip(size, tile)]
    assert ours == compute_steps_for_sliding_window(size, tile, step)


@pytest.mark.parametrize("tile", [(16, 160, 160), (8, 64, 64), (13, 33, 47), (1, 16, 7), (12, 384, 384)])
def test_gaussian_equals_nnunet_compute_gaussian(tile) -> None:
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    theirs = compute_gaussian(tile, dtype=torch.float64, device=torch.device("cpu")).numpy()  # their sigma: the default
    ours = gaussian_importance(tile)  # ours: the default too
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_copied_constants_equal_nnunets() -> None:
    import inspect

    import nnunetv2.configuration
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    from batseg.inference import predictor as predictor_module
    from batseg.inference.resampling import ANISOTROPY_THRESHOLD

    assert SIGMA_SCALE == inspect.signature(compute_gaussian).parameters["sigma_scale"].default
    assert DEFAULT_STEP == inspect.signature(nnUNetPredictor.__init__).parameters["tile_step_size"].default
    assert ANISOTROPY_THRESHOLD == nnunetv2.configuration.ANISO_THRESHOLD
    _, image_kwargs, _, _ = ExperimentPlanner.determine_resampling(None)
    _, output_kwargs = ExperimentPlanner.determine_segmentation_softmax_export_fn(None)
    assert predictor_module.IMAGE_ORDER == image_kwargs["order"]
    assert predictor_module.OUTPUT_ORDER == output_kwargs["order"]


@pytest.mark.parametrize("shape, tiles", [((12, 100, 90), 2 * 3 * 2), ((6, 100, 50), 3)], ids=["12 tiles", "3 tiles, padded"])
def test_blending_of_many_windows_equals_nnunets_sliding_window(shape, tiles, monkeypatch) -> None:
    """Same network, same z-scored volume, overlapping tiles (padded where the volume is smaller
    than a tile): our blended logits are nnU-Net's."""
    import torch
    from batseg.nnunet_reference import build_predictor

    tile = (8, 64, 64)
    reference = build_predictor(light_model(), patch=list(tile))
    volume = smooth_volume(shape, seed=4)
    volume = (volume - volume.mean()) / volume.std()
    with torch.inference_mode():
        theirs = reference.predict_sliding_window_return_logits(torch.from_numpy(volume[None])).float().numpy()

        def run_tile(window: np.ndarray):
            return reference.network(torch.from_numpy(window)).numpy(), None

        plan = plan_windows(volume.shape, tile, DEFAULT_STEP)
        ours, _ = predict_windows(volume, run_tile, plan)
    assert plan.count == tiles
    # nnU-Net sums in float16: where the summed weight is tiny (the volume's outer edges, which
    # only tile borders cover) its weighted logits are subnormal and rounded away; compare
    # everywhere else (about 90 % of the voxels).
    compared = _summed_weight(plan, volume.shape) > 1e-5
    assert compared.mean() > 0.85
    tolerance = 2e-3 * float(np.abs(theirs).max())  # float16's resolution (measured: 1.1e-3)
    assert np.abs(ours - theirs)[:, compared].max() < tolerance
    # The weights matter on this volume: the tiles disagree where they overlap, so an unweighted
    # mean (what a too wide Gaussian tends to) lies far outside the tolerance.
    monkeypatch.setattr(sliding_window, "gaussian_importance", lambda t: np.ones(t, np.float32))
    with torch.inference_mode():
        plain, _ = predict_windows(volume, run_tile, plan)
    assert np.abs(plain - theirs)[:, compared].max() > 10 * tolerance


def _summed_weight(plan, shape) -> np.ndarray:
    """The Gaussian weights of all tiles summed, on the volume of `shape` (padding cropped)."""
    total = np.zeros(plan.padded_shape, np.float32)
    for start in plan.starts:
        total[tuple(slice(s, s + t) for s, t in zip(start, plan.tile))] += gaussian_importance(plan.tile)
    return total[tuple(slice(b, b + n) for b, n in zip(plan.pad_before, shape))]


def test_patch_tiles_and_whole_volume_tile_give_the_same_grid() -> None:
    from batseg.inference.predictor import Predictor
    from batseg.inference.sliding_window import round_up

    image = sagittal_image((10, 420, 400), seed=6)
    patch = predictor("onnx", "patch").predict(image, probabilities=True)
    grid = patch.details["model_shape"]
    one_tile = tuple(round_up(n, m) for n, m in zip(grid, predictor("onnx", "patch").multiple))
    auto = Predictor(light_model(), device="cpu", backend="onnx", threads=2, tile=one_tile,
                     cache_folder=cache_dir()).predict(image, probabilities=True)
    assert auto.details["tiles"] == 1 and patch.details["tiles"] > 1
    assert auto.probabilities.shape == patch.probabilities.shape
    assert auto.labels.GetSize() == patch.labels.GetSize() == image.GetSize()


def test_test_time_augmentation_is_mirror_equivariant() -> None:
    """With all flips averaged, mirroring the input along a model axis mirrors the output."""
    assert len(mirror_combinations((0, 1, 2))) == 8
    array = smooth_volume((8, 48, 32), seed=7)  # already on the light model's grid: no padding
    spacing = (0.94, 0.94, 3.3)
    plain = make_image(array, spacing=spacing)
    flipped = make_image(np.ascontiguousarray(array[::-1]), spacing=spacing)  # mirrored left-right
    first = predictor("onnx").predict(plain, tta=True, probabilities=True)
    second = predictor("onnx").predict(flipped, tta=True, probabilities=True)
    np.testing.assert_allclose(second.probabilities[:, ::-1], first.probabilities, atol=1e-4)
    without = predictor("onnx").predict(plain, probabilities=True)
    assert np.abs(without.probabilities - first.probabilities).max() > 1e-3  # TTA did change something


def test_onnx_export_is_cached_and_a_damaged_cache_is_rebuilt() -> None:
    folder = work_dir() / "fresh-cache"
    cold = Predictor(light_model(), device="cpu", backend="onnx", cache_folder=folder)
    assert cold.backend_info["onnx_cache"] == "cold"
    warm = Predictor(light_model(), device="cpu", backend="onnx", cache_folder=folder)
    assert warm.backend_info["onnx_cache"] == "warm"
    path = backends.onnx_cache_path(warm.manifest, folder)
    assert path.is_file() and backends.sidecar_path(path).is_file()
    assert json.loads(backends.sidecar_path(path).read_text())["made_from"]["weights_sha256"] == warm.manifest["weights_sha256"]
    assert not list(path.parent.glob(".*part"))  # no temporary file left behind
    path.write_bytes(b"damaged")
    repaired = Predictor(light_model(), device="cpu", backend="onnx", cache_folder=folder)
    assert repaired.backend_info["onnx_cache"] == "cold" and path.stat().st_size > 1000
    image = sagittal_image((8, 40, 40))
    # Copies, not views: a view does not keep its temporary image alive, so comparing views of two
    # temporaries compared freed memory (a flaky CI failure).
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(repaired.predict(image).labels),
        sitk.GetArrayFromImage(predictor("onnx").predict(image).labels),
    )


def test_warm_onnx_prediction_does_not_import_torch() -> None:
    predictor("onnx")  # makes sure the export is cached
    code = (
        "import sys, numpy as np, SimpleITK as sitk\n"
        "from batseg.inference.predictor import Predictor\n"
        f"p = Predictor({str(light_model())!r}, device='cpu', backend='onnx', cache_folder=__import__('pathlib').Path({str(cache_dir())!r}))\n"
        "image = sitk.GetImageFromArray(np.random.rand(8, 40, 40).astype(np.float32)); image.SetSpacing((0.5, 0.5, 3.6))\n"
        "p.predict(image)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


class _OutOfMemoryOnce:
    """A fake GPU backend whose first tile fails like torch.cuda.OutOfMemoryError."""

    name = "torch"
    device = "cuda"

    def run(self, tile):
        raise type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_gpu_out_of_memory_falls_back_to_the_cpu(capsys) -> None:
    image = sagittal_image((8, 40, 40), seed=9)
    reference = predictor("onnx").predict(image)
    fallback = Predictor(light_model(), device="cpu", backend="auto", cache_folder=cache_dir(), progress=Progress("json"))
    fallback.device, fallback.backend = "cuda", _OutOfMemoryOnce()
    result = fallback.predict(image)
    assert fallback.device == "cpu" and result.details["device"] == "cpu"
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(result.labels), sitk.GetArrayViewFromImage(reference.labels))
    events = [json.loads(line[len("BATSEG "):]) for line in capsys.readouterr().out.splitlines() if line.startswith("BATSEG ")]
    assert any("ran out of memory" in e.get("message", "") for e in events)


def test_backend_and_device_choices() -> None:
    assert backends.resolve_backend("auto", "cpu") == backends.DEFAULT_CPU_BACKEND
    assert backends.resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(BATsegError):
        backends.resolve_backend("tensorrt", "cpu")
    if not backends.cuda_available():
        assert backends.resolve_device("auto") == "cpu"
        with pytest.raises(BATsegError, match="no CUDA GPU"):
            backends.resolve_device("cuda")
    assert backends.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not backends.is_out_of_memory(RuntimeError("shape mismatch"))
    one_thread = Predictor(light_model(), device="cpu", backend="onnx", threads=1, cache_folder=cache_dir())
    assert one_thread.predict(sagittal_image((8, 40, 40))).labels.GetSize() == (40, 40, 8)


def test_onnx_memory_arena_is_off_for_paper_size_networks_only(monkeypatch) -> None:
    from batseg.models import untrained_manifest

    assert backends.use_arena(untrained_manifest("light")) is True
    assert backends.use_arena(untrained_manifest("paper")) is False  # 2.5 GB -> 1.35 GB peak, measured
    monkeypatch.setattr(backends, "CPU_MEMORY_ARENA", True)
    assert backends.use_arena(untrained_manifest("paper")) is True
    onnx_path = backends.onnx_cache_path(predictor("onnx").manifest, cache_dir())
    options = backends._session(onnx_path, None, "cpu", arena=False).get_session_options()
    assert options.enable_cpu_mem_arena is False and options.enable_mem_pattern is False
    assert predictor("onnx").backend_info["onnx_memory_arena"] is True  # the light model keeps it
