"""`batseg benchmark` on a tiny volume, the per-child measurement, and nnU-Net's predictor set up
from a model file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.benchmark import Settings, run_child, synthetic_volume
from batseg.cli import main
from batseg.inference.orientation import acquisition
from inference_helpers import light_model, predictor


def test_child_peak_memory_and_time_are_the_childs_own() -> None:
    """The child's own high-water mark is used, not ru_maxrss (which counts this big parent)."""
    report = (
        "import json; from batseg.inference.memory import peak_resident_bytes; "
        "print('BATSEG ' + json.dumps({'peak_memory_mb': peak_resident_bytes() / 2**20}))"
    )
    big = "import numpy as np, time; a = np.ones(300 * 2**20 // 8); time.sleep(0.3); " + report
    parent_ballast = np.ones(400 * 2**20 // 8)  # makes this process (the parent) big
    run = run_child([sys.executable, "-c", big], env={})
    small = run_child([sys.executable, "-c", report], env={})
    assert run.returncode == 0 and small.returncode == 0
    assert run.peak_bytes > 300 * 2**20
    assert small.peak_bytes < 200 * 2**20 < parent_ballast.nbytes
    assert 0.3 < run.seconds < 30


def test_phantom_volume_is_resampled_to_the_requested_grid() -> None:
    from batseg.benchmark import phantom_volume

    image, description = phantom_volume((9, 96, 80), (3.6, 0.5, 0.55))
    assert image.GetSize() == (80, 96, 9) and image.GetSpacing() == (0.55, 0.5, 3.6)
    assert acquisition(image).plane == "sagittal" and "phantom" in description
    assert sitk.GetArrayViewFromImage(image).std() > 10  # anatomy, not an empty grid


def test_the_phantom_cord_mask_is_on_the_volume_grid() -> None:
    from batseg.benchmark import phantom_case

    image, cord, _ = phantom_case((9, 384, 384), (3.6, 0.5, 0.5))
    assert cord.GetSize() == image.GetSize() and cord.GetDirection() == image.GetDirection()
    assert 0 < sitk.GetArrayViewFromImage(cord).mean() < 0.2  # a cord, not the whole grid


def test_benchmark_crop_runs_batseg_as_predict_does_by_default_and_nnunet_whole(tmp_path: Path) -> None:
    from batseg.benchmark import CORD_MASK_NAME, Settings, batseg_command, nnunet_command

    volume = tmp_path / "benchmark_case.nii.gz"
    located = batseg_command(volume, tmp_path / "out", tmp_path / "m.batseg", Settings(crop_to_cord=20.0, threads=2))
    assert located[-2:] == ["--crop-to-cord", "20"] and "--cord-masks" not in located  # the locator's cord
    masked = Settings(crop_to_cord=20.0, threads=2, cord_source="mask")
    command = batseg_command(volume, tmp_path / "out", tmp_path / "m.batseg", masked)
    assert command[-4:] == ["--crop-to-cord", "20", "--cord-masks", str(tmp_path / CORD_MASK_NAME)]
    whole = batseg_command(volume, tmp_path / "out", tmp_path / "m.batseg", Settings(threads=2))
    assert whole[-2:] == ["--no-crop", "--no-cord-locator"]
    assert "--crop-to-cord" not in nnunet_command(volume, tmp_path, tmp_path / "m.batseg", masked)


def test_synthetic_volume_is_a_sagittal_clinical_grid() -> None:
    image = synthetic_volume((15, 64, 48), (3.6, 0.5, 0.5))
    assert image.GetSize() == (48, 64, 15) and image.GetSpacing() == (0.5, 0.5, 3.6)
    assert acquisition(image).plane == "sagittal"
    array = sitk.GetArrayViewFromImage(image)
    assert array.dtype == np.int16 and array.std() > 50


def test_benchmark_command_end_to_end(tmp_path: Path, capsys) -> None:
    figures = tmp_path / "bench.json"
    status = main([
        "benchmark", "--model", str(light_model()), "--size", "6", "48", "40", "--spacing", "3.6", "0.5", "0.5",
        "--repeats", "1", "--threads", "2", "--json", str(figures), "--progress", "quiet",
    ])
    assert status == 0
    table = capsys.readouterr().out
    assert "batseg predict, warm runs" in table and "nnU-Net v2" in table and "speed-up" in table
    summary = json.loads(figures.read_text())
    assert [row["runs"] for row in summary["rows"]] == [1, 1, 1, 1]
    assert all(row["median_s"] > 0 and row["peak_mb"] > 50 for row in summary["rows"])
    assert summary["speedup"] == summary["rows"][2]["median_s"] / summary["rows"][1]["median_s"]
    assert summary["rows"][3]["pipeline"].startswith("nnU-Net v2, same tile ")
    assert summary["speedup_same_tile"] == summary["rows"][3]["median_s"] / summary["rows"][1]["median_s"]
    assert "same-tile median" in table
    for stage in ("read", "preprocess", "predict", "resample back", "postprocess", "report", "write"):
        assert stage in summary["batseg_stage_medians_s"]
    assert summary["model"].startswith("untrained-light")


def test_without_a_model_an_untrained_one_is_written_and_named(tmp_path: Path, monkeypatch) -> None:
    from batseg import benchmark, models
    from batseg.errors import ModelFileError

    def no_shipped_model():
        raise ModelFileError("no shipped model")

    monkeypatch.setattr(models, "default_model_path", no_shipped_model)
    said = []
    (tmp_path / "b").mkdir()
    path, description = benchmark.benchmark_model(tmp_path, Settings(topology="light"), said.append)
    assert path.is_file() and path.parent == tmp_path
    assert "random weights" in description and "light" in description
    assert said and "random weights" in said[0]
    background, text = benchmark.benchmark_model(tmp_path / "b", Settings(untrained_output="background"), said.append)
    assert "background only" in text
    from batseg.inference.predictor import Predictor
    from inference_helpers import cache_dir, sagittal_image

    labels = Predictor(background, device="cpu", cache_folder=cache_dir()).predict(sagittal_image()).labels
    assert sitk.GetArrayViewFromImage(labels).max() == 0


@pytest.mark.parametrize("shape, tile, tiles", [
    ((8, 64, 48), None, 1),  # the plan's patch: one padded tile
    ((12, 100, 90), (8, 64, 64), 12),  # many overlapping tiles: Gaussian blending on both sides
], ids=["one tile", "12 tiles"])
def test_nnunet_predictor_from_a_model_file_agrees_with_ours(shape, tile, tiles, tmp_path: Path) -> None:
    """nnU-Net's predictor with the model file's network gives nearly our labels on a PIR image."""
    from batseg.nnunet_reference import main as nnunet_main

    image = synthetic_volume(shape, (3.3, 0.94, 0.94))  # already on the model's grid
    source = tmp_path / "case.nii.gz"
    sitk.WriteImage(image, str(source))
    patch = ["--patch", *map(str, tile)] if tile else []
    assert nnunet_main(["--model", str(light_model()), "-i", str(source), "-o", str(tmp_path / "nn.nii.gz"),
                        "--threads", "2", *patch]) == 0
    theirs = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nn.nii.gz")))
    result = predictor("onnx", tile or "patch").predict(image)
    ours = sitk.GetArrayFromImage(result.labels)
    assert result.details["tiles"] == tiles
    assert theirs.shape == ours.shape
    assert (theirs == ours).mean() > 0.99


def test_nnunet_reference_patch_replaces_the_plans_tile_only() -> None:
    """`--patch` changes the tile nnU-Net slides; the model file's stored plans stay as they are."""
    from batseg.model_file import read_manifest
    from batseg.nnunet_reference import build_predictor

    model = light_model()
    default = build_predictor(model)
    wider = build_predictor(model, patch=[16, 96, 64])
    assert list(wider.configuration_manager.patch_size) == [16, 96, 64]
    assert list(default.configuration_manager.patch_size) == list(read_manifest(model)["input"]["patch_size"])
