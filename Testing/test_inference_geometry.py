"""Geometry of inference: reorientation, resampling, and the output grid equal to the input grid.

Uses a random-weight light model (the labels are meaningless; only grids and consistency are
checked) and the real healthy scans in shared/data/real-spine-mri.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.inference.orientation import (
    AxisMapping,
    acquisition,
    axis_mapping,
    model_axes,
    orientation_warning,
)
from batseg.inference.resampling import model_grid_shape, resize_channels, resize_volume
from batseg.io import Case, read_image
from inference_helpers import (
    PIR_DIRECTION,
    REAL_DATA,
    make_image,
    predictor,
    reorient_image,
    rotation,
    same_grid,
    sagittal_image,
    smooth_volume,
    write_image,
)


def signed_permutations() -> list[np.ndarray]:
    """All 48 axis-aligned direction matrices (permutations with signs)."""
    matrices = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            for column, (row, sign) in enumerate(zip(perm, signs)):
                matrix[row, column] = sign
            matrices.append(matrix)
    return matrices


@pytest.mark.parametrize("target", ["PIR", "RAS", "LPS", "SAL"])
def test_reorientation_equals_dicomorient_for_all_axis_aligned_and_oblique_images(target: str) -> None:
    array = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    directions = signed_permutations() + [rotation(0, 12.0) @ rotation(1, -7.0) @ m for m in signed_permutations()[::5]]
    for direction in directions:
        image = make_image(array, spacing=(0.5, 0.7, 3.3), direction=direction)
        ours = reorient_image(image, axis_mapping(direction, target))
        reference = sitk.DICOMOrient(image, target)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(reference))
        np.testing.assert_allclose(ours.GetOrigin(), reference.GetOrigin(), atol=1e-9)
        np.testing.assert_allclose(ours.GetSpacing(), reference.GetSpacing(), atol=1e-12)
        np.testing.assert_allclose(ours.GetDirection(), reference.GetDirection(), atol=1e-12)


def test_axis_mapping_round_trip_with_channels_and_transpose() -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(size=(2, 3, 4, 5))
    for direction in signed_permutations()[::7]:
        mapping = axis_mapping(direction, "PIR").then_transpose((0, 2, 1))
        np.testing.assert_array_equal(mapping.to_input(mapping.to_model(array)), array)
    assert axis_mapping(np.asarray(PIR_DIRECTION).reshape(3, 3), "PIR") == AxisMapping((0, 1, 2), (False, False, False))
    assert model_axes({"convention": "nnunet", "transpose_forward": [0, 1, 2]}) == ("PIR", (0, 1, 2))
    assert model_axes("ras") == ("RAS", (0, 1, 2))


@pytest.mark.parametrize(
    "current, target, order",
    [
        ((3.6, 0.5, 0.5), (3.3, 0.94, 0.94), 3),  # clinical sagittal -> light grid (separate z)
        ((1.0, 1.0, 1.0), (3.3, 0.94, 0.94), 3),  # isotropic -> anisotropic target (separate z by target)
        ((1.0, 1.2, 1.1), (1.5, 1.0, 1.3), 3),  # nearly isotropic: one 3-D spline
        ((3.3, 0.94, 0.94), (3.6, 0.5, 0.5), 1),  # back to the input grid (probabilities)
        ((0.9, 3.0, 0.9), (0.5, 3.3, 0.5), 1),  # coarse axis in the middle
    ],
)
def test_resampling_equals_nnunet_default_resampling(current, target, order) -> None:
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

    volume = smooth_volume((9, 40, 36), seed=3)
    shape = model_grid_shape(volume.shape, current, target)
    reference = resample_data_or_seg_to_shape(volume[None], shape, current, target, False, order, 0, None)[0]
    ours = resize_volume(volume, shape, current, target, order)
    assert ours.shape == tuple(shape)
    np.testing.assert_allclose(ours, reference, atol=1e-3 * float(np.abs(reference).max()))
    channels = np.stack([volume, 2 * volume + 1])
    batched = resize_channels(channels, shape, current, target, 1)
    np.testing.assert_allclose(batched[1], resize_volume(channels[1], shape, current, target, 1), atol=1e-3)


def oblique_direction() -> np.ndarray:
    return rotation(0, 14.0) @ rotation(2, -9.0) @ np.asarray(PIR_DIRECTION).reshape(3, 3)


GEOMETRIES = {
    # name: (spacing (i, j, k), direction)
    "sagittal PIR": ((0.5, 0.5, 3.6), np.asarray(PIR_DIRECTION).reshape(3, 3)),
    "oblique sagittal": ((0.55, 0.45, 4.0), oblique_direction()),
    "anisotropic odd sizes": ((0.37, 0.81, 2.9), np.asarray(PIR_DIRECTION).reshape(3, 3)),
    "LPS identity": ((0.6, 0.6, 3.3), np.eye(3)),
    "RAS": ((3.3, 0.6, 0.6), np.diag([-1.0, -1.0, 1.0])),
    "PSR (as SCT stores sagittal T2)": ((0.5, 0.5, 3.5), np.array([[0, 0, -1], [1, 0, 0], [0, 1, 0]], dtype=float)),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_label_grid_equals_input_grid(name: str) -> None:
    spacing, direction = GEOMETRIES[name]
    shape = (9, 47, 53) if spacing[2] > 1 else (53, 47, 9)
    image = make_image(smooth_volume(shape, seed=1), spacing=spacing, direction=direction, origin=(-3.25, 17.5, 101.0))
    result = predictor("onnx").predict(image, probabilities=True, field=True)
    assert same_grid(result.labels, image)
    assert result.labels.GetPixelID() == sitk.sitkUInt8
    labels = sitk.GetArrayViewFromImage(result.labels)
    assert labels.shape == shape and labels.max() <= 4
    assert result.probabilities.shape == (4, *shape) and result.probabilities.dtype == np.float32
    assert np.all(result.probabilities >= 0) and np.all(result.probabilities.sum(axis=0) <= 1 + 1e-5)
    assert result.field.shape == (4, *shape) and 0 <= result.field.min() and result.field.max() <= 1
    # The label is the argmax of the returned probabilities wherever a tumour class wins clearly.
    background = 1 - result.probabilities.sum(axis=0)
    winner = np.argmax(np.concatenate([background[None], result.probabilities]), axis=0)
    clear = np.sort(np.concatenate([background[None], result.probabilities]), axis=0)
    clear = (clear[-1] - clear[-2]) > 1e-4
    np.testing.assert_array_equal(winner[clear], labels[clear])


@pytest.mark.parametrize("target_code", ["RAS", "LPI", "AIL"])
def test_prediction_does_not_depend_on_how_the_volume_is_stored(target_code: str) -> None:
    """The same physical volume stored in another voxel order gives the same labels, voxel for voxel."""
    for image in (sagittal_image(seed=4), sagittal_image(seed=5, oblique_degrees=10.0)):
        stored = sitk.DICOMOrient(image, target_code)
        reference = predictor("onnx").predict(image).labels
        other = predictor("onnx").predict(stored).labels
        assert same_grid(other, stored)
        back = sitk.DICOMOrient(other, sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(reference))


REAL_SCANS = [
    "sct_testing_data/t2/t2.nii.gz",  # PSR, 1 mm
    "sct_testing_data/t1/t1w.nii.gz",  # RAS, int16
    "spine-generic_sub-unf01/sub-unf01_T1w.nii.gz",  # axial slab, float32
]


@pytest.mark.parametrize("relative", REAL_SCANS)
def test_real_scans_keep_their_grid_through_files(relative: str, tmp_path) -> None:
    path = REAL_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    image = read_image(Case("scan", path, "file"))
    result = predictor("onnx").predict(image)
    assert same_grid(result.labels, image)
    written = write_image(result.labels, tmp_path / "labels.nii.gz")
    again = sitk.ReadImage(str(written))
    original = sitk.ReadImage(str(path))
    assert again.GetSize() == original.GetSize()
    # NIfTI stores the geometry in float32: equal to the input file's own float32 header values.
    np.testing.assert_allclose(again.GetOrigin(), original.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(again.GetSpacing(), original.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(again.GetDirection(), original.GetDirection(), atol=1e-6)


def test_acquisition_plane_and_warning() -> None:
    sagittal = sagittal_image()
    assert acquisition(sagittal).plane == "sagittal"
    assert orientation_warning(sagittal, "PIR", (3.3, 0.94, 0.94)) is None
    axial = make_image(smooth_volume((8, 40, 40)), spacing=(0.5, 0.5, 5.0), direction=np.eye(3))
    found = acquisition(axial)
    assert found.plane == "axial" and found.slice_spacing == 5.0
    message = orientation_warning(axial, "PIR", (3.3, 0.94, 0.94))
    assert message and "axial" in message and "sagittal" in message
    assert predictor("onnx").predict(axial).warnings == [message]
    isotropic = make_image(smooth_volume((20, 20, 20)), spacing=(1.0, 1.0, 1.0), direction=np.eye(3))
    assert acquisition(isotropic).plane == "isotropic"
    assert orientation_warning(isotropic, "PIR", (3.3, 0.94, 0.94)) is None
    oblique = make_image(smooth_volume((8, 40, 40)), spacing=(0.5, 0.5, 3.6), direction=oblique_direction())
    assert acquisition(oblique).plane == "sagittal" and acquisition(oblique).obliquity_degrees > 5
