"""The cascade crop (batseg.inference.canal_crop): box geometry, widening where a lesion reaches
a face, and, with the shipped model, the same lesions as the uncropped prediction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.commands.cord_arguments import DEFAULT_CROP_MARGIN_MM
from batseg.inference.canal_crop import (
    DEFAULT_MARGIN_MM,
    TUMOUR_FILL_LOGIT,
    Box,
    open_faces,
    predict_cropped,
    roi_box,
    widen,
)
from batseg.inference.predictor import Predictor
from batseg.metrics import dice
from batseg.models import default_model_path
from batseg.phantoms.case import generate_case
from inference_helpers import cache_dir, predictor, run_cli


def test_the_cli_default_margin_is_the_module_default() -> None:
    assert DEFAULT_CROP_MARGIN_MM == DEFAULT_MARGIN_MM


def test_roi_box_maps_to_the_model_grid_and_adds_the_margin() -> None:
    roi = np.zeros((10, 100, 80), bool)
    roi[4:6, 20:60, 30:34] = True  # input voxels of 3 x 0.5 x 0.5 mm; the model grid is 3 x 1 x 1 mm
    box = roi_box(roi, (3.0, 0.5, 0.5), (3.0, 1.0, 1.0), (10, 50, 40), margin_mm=5.0)
    # z: voxels 4-5, margin 2 voxels; y: 10-30 on the model grid, margin 5; x: 15-17, margin 5
    assert box == Box((2, 5, 10), (8, 35, 22))


def test_roi_box_is_clipped_to_the_grid_and_none_for_an_empty_mask() -> None:
    roi = np.zeros((4, 10, 10), bool)
    assert roi_box(roi, (1, 1, 1), (1, 1, 1), roi.shape) is None
    roi[0, 0, 9] = True
    assert roi_box(roi, (1, 1, 1), (1, 1, 1), roi.shape, margin_mm=3) == Box((0, 0, 6), (4, 4, 10))


def test_open_faces_ignore_the_grid_edges() -> None:
    box = Box((0, 2, 2), (4, 8, 8))
    foreground = np.zeros(box.shape, bool)
    foreground[0, 3, 3] = True  # on the low z face, which is the grid's edge
    foreground[2, -1, 3] = True  # on the high y face, inside the grid
    assert open_faces(foreground, box, (4, 10, 10)) == [(1, 1)]
    assert widen(box, [(1, 1)], (1, 5, 5), (4, 10, 10)) == Box((0, 2, 2), (4, 10, 8))


def threshold_network(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in network: class 2 where the intensity exceeds 1 (no context needed), a field that
    is the intensity itself."""
    logits = np.zeros((5, *volume.shape), np.float32)
    logits[2] = np.where(volume > 1, 5.0, -5.0)
    return logits, volume[None].astype(np.float32)


def test_a_lesion_inside_the_box_gives_the_uncropped_result_and_background_outside() -> None:
    volume = np.zeros((8, 40, 40), np.float32)
    volume[3:5, 10:14, 10:14] = 2.0
    volume[3:5, 30:34, 30:34] = 0.5  # below the threshold: nothing there
    result = predict_cropped(volume, threshold_network, Box((0, 5, 5), (8, 20, 20)), 2.0, (1.0, 1.0, 1.0))
    whole = threshold_network(volume)[0]
    assert result.widenings == 0 and not result.whole_grid
    assert np.array_equal(np.argmax(result.logits, 0), np.argmax(whole, 0))
    assert result.logits[2, 0, 39, 39] == TUMOUR_FILL_LOGIT and result.logits[0, 0, 39, 39] == 0
    assert result.field[0, 3, 31, 31] == 0.0  # outside: "far from every surface"


def test_a_lesion_reaching_a_face_widens_the_box_until_it_is_whole() -> None:
    volume = np.zeros((8, 60, 40), np.float32)
    volume[3:5, 10:50, 10:14] = 2.0  # a long lesion, running out of the box along y
    calls = []

    def network(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(sub.shape)
        return threshold_network(sub)

    result = predict_cropped(volume, network, Box((0, 5, 5), (8, 20, 20)), 12.0, (1.0, 1.0, 1.0))
    assert np.array_equal(np.argmax(result.logits, 0), np.argmax(threshold_network(volume)[0], 0))
    assert result.widenings >= 1 and result.box.hi[1] >= 51
    assert len(calls) == result.widenings + 1


def test_widening_gives_up_for_the_whole_grid() -> None:
    volume = np.full((4, 200, 10), 2.0, np.float32)  # foreground everywhere: every face stays open
    result = predict_cropped(volume, threshold_network, Box((0, 0, 0), (4, 10, 10)), 1.0, (1.0, 1.0, 1.0))
    assert result.whole_grid and result.box.shape == volume.shape


@pytest.fixture(scope="module")
def phantom_with_cord() -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    case = generate_case(11, tumour_types=[2])
    return case.image, sitk.GetArrayFromImage(case.cord) > 0, sitk.GetArrayFromImage(case.label)


def test_the_shipped_model_finds_the_same_lesion_with_and_without_the_crop(phantom_with_cord) -> None:
    image, cord, truth = phantom_with_cord
    model = Predictor(default_model_path(), device="cpu", backend="onnx", threads=2, cache_folder=cache_dir())
    whole_prediction = model.predict(image)
    whole = sitk.GetArrayFromImage(whole_prediction.labels)
    cropped = model.predict(image, roi=cord)
    labels = sitk.GetArrayFromImage(cropped.labels)
    lo, hi = cropped.details["crop_box"]
    # "auto" tiles: nnU-Net's training patch on the whole scan, the box in one tile on the crop
    assert whole_prediction.details["tile"] == list(model.patch_size) and whole_prediction.details["tiles"] > 1
    assert cropped.details["tiles"] == 1 and cropped.details["tile"] != list(model.patch_size)
    assert not cropped.details["crop_whole_grid"]
    assert lo[1] == 0 and hi[1] == cropped.details["model_shape"][1]  # superior-inferior: the whole grid
    assert np.prod(np.subtract(hi, lo)) < 0.6 * np.prod(cropped.details["model_shape"])  # a real saving
    tumour = truth == 2
    # The crop's one tile and the whole scan's patch tiles give instance normalisation different
    # statistics (docs/inference.md, "Tiles"), so the label maps differ; both find the lesion.
    print("Dice whole / crop / between:", dice(whole == 2, tumour), dice(labels == 2, tumour), dice(labels == 2, whole == 2))
    assert dice(whole == 2, tumour) > 0.5 and dice(labels == 2, tumour) > 0.5
    assert dice(labels == 2, whole == 2) > 0.6


def test_an_empty_cord_mask_segments_the_whole_volume_with_a_warning(phantom_with_cord) -> None:
    image, cord, _ = phantom_with_cord
    result = predictor().predict(image, roi=np.zeros_like(cord))
    assert "crop_box" not in result.details
    assert any("cord mask is empty" in w for w in result.warnings)


def test_crop_to_cord_needs_a_sane_margin(tmp_path) -> None:
    image = tmp_path / "case.nii.gz"
    sitk.WriteImage(sitk.Image(8, 8, 8, sitk.sitkInt16), str(image))
    for extra, says in ((["--crop-to-cord", "-3"], "zero or positive"),
                        (["--cord-masks", str(image), "--crop-to-cord", "nan"], "zero or positive")):
        done = run_cli("predict", "-i", str(image), "-o", str(tmp_path / "out"), *extra)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
