"""Synthetic lesions in real backgrounds (issue 13): clinical grids, the T2 -> T1-like remap and
the four lesion types painted relative to a cord mask, checked on a synthetic cord (always) and on
the real scans of ../shared (skipped with the reason when absent)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.phantoms.insertion import (
    ASTROCYTOMA, EPENDYMOMA, HEMANGIOBLASTOMA, MENINGIOMA, centreline, insert_lesion, noise_level,
)
from batseg.phantoms.real_grid import (
    AIR_LEVEL, AP_WINDOW_MM, IN_PLANE_MM, SLICE_MM, T1_TISSUE_TARGETS, anterior_posterior_window, clinical_grid,
    cord_rows, crop_rows, reslice, t1_like, t1_tissue_levels,
)
from inference_helpers import REAL_DATA

SPACING = (3.6, 0.5, 0.5)  # (k, j, i) mm: sagittal slices, 0.5 mm in-plane


def synthetic_canal(t2: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (k, j, i) volume with a straight cord (radius 4 mm) in a CSF sleeve, and its cord mask."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(np.arange(9) * SPACING[0], np.arange(240) * SPACING[1], np.arange(120) * SPACING[2],
                          indexing="ij")
    radius = np.hypot(k - 4 * SPACING[0], i - 30.0)
    cord = radius <= 4.0
    image = np.where(cord, 300.0, np.where(radius <= 7.0, 900.0 if t2 else 120.0, 500.0))
    return (image + rng.normal(0, 10, image.shape)).astype(np.float32), cord.astype(np.uint8)


@pytest.mark.parametrize("tumour_type", [MENINGIOMA, EPENDYMOMA, ASTROCYTOMA, HEMANGIOBLASTOMA])
def test_each_type_is_painted_as_its_rules_say(tumour_type: int) -> None:
    image, cord = synthetic_canal()
    volumes = []
    for seed in range(4):
        result = insert_lesion(image, cord, SPACING, tumour_type, np.random.default_rng(seed))
        assert set(np.unique(result.label)) == {0, tumour_type}
        lesion = result.label > 0
        volumes.append(lesion.sum() * np.prod(SPACING))
        assert result.lesions[0]["volume_mm3"] == pytest.approx(volumes[-1], rel=1e-3)
        assert float(np.median(result.image[lesion])) > float(np.median(image[cord > 0]))  # enhancing
        if tumour_type == MENINGIOMA:  # beside the cord, never inside it; the cord mask is unchanged
            assert not (lesion & (cord > 0)).any() and (result.cord == cord).all()
        else:  # intramedullary: the cord mask holds the lesion, and the lesion touches the cord
            assert (result.cord[lesion] > 0).all() and (lesion & (cord > 0)).any()
        assert (result.image[~lesion & (result.image != image)] >= 0).all()
    assert 20 < min(volumes) and max(volumes) < 8000


def test_cysts_are_dark_and_not_labelled() -> None:
    image, cord = synthetic_canal()
    for seed in range(12):
        result = insert_lesion(image, cord, SPACING, EPENDYMOMA, np.random.default_rng(seed))
        if result.lesions[0]["cysts"]:
            darker = (result.image < image - 100) & (result.label == 0)  # the cyst, unlabelled
            assert darker.sum() > 50 and float(np.median(result.image[darker])) < 300 * 0.6
            return
    pytest.fail("no ependymoma with a polar cyst in 12 draws (55% per pole)")


def test_the_lesion_keeps_the_scan_noise() -> None:
    image, cord = synthetic_canal()
    result = insert_lesion(image, cord, SPACING, MENINGIOMA, np.random.default_rng(1))
    inside = result.image[result.label > 0]
    assert 0.5 * noise_level(image, cord > 0) < np.std(inside - np.median(inside)) < 0.2 * np.median(inside)


def test_a_scan_without_cord_gets_no_lesion() -> None:
    image, cord = synthetic_canal()
    result = insert_lesion(image, np.zeros_like(cord), SPACING, EPENDYMOMA, np.random.default_rng(0))
    assert not result.label.any() and result.lesions == []


def test_t1_like_darkens_the_csf_and_keeps_the_cord() -> None:
    image, cord = synthetic_canal(t2=True)
    remapped = t1_like(image, cord, SPACING, np.random.default_rng(0))
    sleeve = (~cord.astype(bool)) & (image > 700)
    assert np.median(remapped[sleeve]) < 0.6 * np.median(remapped[cord > 0])
    assert np.median(remapped[cord > 0]) == pytest.approx(np.median(image[cord > 0]), rel=0.05)


def test_centreline_follows_the_cord() -> None:
    _, cord = synthetic_canal()
    line = centreline(cord, SPACING)
    assert np.nanmedian(line.radius) == pytest.approx(4.0, abs=1.0)
    assert np.nanmedian(line.i_mm) == pytest.approx(30.0, abs=0.5)


def _source() -> sitk.Image:
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((80, 60, 40)).astype(np.float32))
    image.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))  # RAS, 1 mm isotropic, like the real scans
    return image


def test_clinical_grids_are_sagittal_pir_inside_the_scan() -> None:
    source = _source()
    for seed in range(5):
        grid = clinical_grid(source, np.random.default_rng(seed))
        code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(grid.GetDirection())
        assert code == "PIR"
        sx, sy, sz = grid.GetSpacing()
        assert sx == sy and IN_PLANE_MM[0] <= sx <= IN_PLANE_MM[1] and SLICE_MM[0] <= sz <= SLICE_MM[1]
        resliced = sitk.GetArrayFromImage(reslice(source, grid))
        assert (resliced > 0).mean() > 0.8  # the grid lies within the scan's extent


def test_crop_rows_keeps_the_physical_position() -> None:
    grid = clinical_grid(_source(), None, 0.5, 3.6)
    cord = np.zeros(sitk.GetArrayViewFromImage(grid).shape, np.uint8)
    cord[:, 40:60] = 1
    rows = cord_rows(cord, 0.5, margin_mm=5.0)
    assert (rows.start, rows.stop) == (30, 70)
    cropped = crop_rows(grid, rows)
    assert cropped.GetSize()[1] == 40
    assert cropped.TransformIndexToPhysicalPoint((0, 0, 0)) == pytest.approx(grid.TransformIndexToPhysicalPoint((0, 30, 0)))


def _t2_tissue(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic canal with T2-like tissue outside it: air, dark muscle, a little bright fat."""
    image, cord = synthetic_canal(t2=True, seed=seed)
    rng = np.random.default_rng(seed)
    outside = np.hypot(*np.meshgrid(np.arange(9) * SPACING[0] - 4 * SPACING[0], np.arange(120) * SPACING[2] - 30.0,
                                    indexing="ij")) > 12.0
    outside = np.broadcast_to(outside[:, None, :], image.shape)
    tissue = rng.choice([10.0, 120.0, 600.0], size=image.shape, p=[0.3, 0.65, 0.05])  # air, muscle, fat
    return np.where(outside, tissue + rng.normal(0, 5, image.shape), image).astype(np.float32), cord


def test_t1_tissue_levels_brighten_tissue_outside_the_canal_only() -> None:
    image, cord = _t2_tissue()
    cord_signal = float(np.median(image[cord > 0]))
    for seed in range(5):
        out = t1_tissue_levels(image, cord, SPACING, np.random.default_rng(seed))
        far = np.broadcast_to((np.abs(np.arange(120) * SPACING[2] - 30.0) > 25.0)[None, None, :], image.shape)
        muscle = far & (image > 60) & (image < 300)
        ratio = float(np.median(out[muscle])) / cord_signal
        assert T1_TISSUE_TARGETS[0][0] - 0.05 <= ratio <= T1_TISSUE_TARGETS[1][1]  # muscle near the cord's level now
        air = far & (image < AIR_LEVEL * cord_signal)
        assert np.allclose(out[air], image[air], atol=1e-3)  # air kept
        assert np.allclose(out[cord > 0], image[cord > 0], atol=1e-3)  # the cord and its canal untouched
        fat = far & (image > 400)
        assert float(out[fat].min()) > float(out[muscle].max())  # monotone: fat stays above muscle


def test_anterior_posterior_window_holds_the_cord() -> None:
    cord = np.zeros((5, 20, 600), np.uint8)
    cord[:, :, 300:340] = 1
    for seed in range(20):
        window = anterior_posterior_window(cord, 0.5, np.random.default_rng(seed))
        assert window.start <= 300 and window.stop >= 340 and 0 <= window.start and window.stop <= 600
        assert AP_WINDOW_MM[0] / 0.5 - 1 <= window.stop - window.start <= AP_WINDOW_MM[1] / 0.5 + 1
    wide = np.zeros((5, 20, 100), np.uint8)
    wide[:, :, 10:95] = 1  # a cord wider than the widest window: the window grows to hold it
    window = anterior_posterior_window(wide, 0.5, np.random.default_rng(0))
    assert window.start <= 10 and window.stop >= 95


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real scans missing: {REAL_DATA}")
def test_a_lesion_in_a_real_t2_background_made_t1_like() -> None:
    scan = sitk.ReadImage(str(REAL_DATA / "sct_testing_data/t2/t2.nii.gz"), sitk.sitkFloat32)
    mask = sitk.ReadImage(str(REAL_DATA / "sct_testing_data/t2/t2_seg-manual.nii.gz"), sitk.sitkFloat32)
    rng = np.random.default_rng(3)
    grid = clinical_grid(scan, rng)
    image, cord = sitk.GetArrayFromImage(reslice(scan, grid)), sitk.GetArrayFromImage(reslice(mask, grid, True))
    spacing = grid.GetSpacing()[::-1]
    remapped = t1_like(image, cord, spacing, rng)
    result = insert_lesion(remapped, cord, spacing, HEMANGIOBLASTOMA, rng)
    assert result.label.max() == HEMANGIOBLASTOMA and result.lesions[0]["volume_mm3"] > 20
