"""A lesion's enhancement (its median signal over the cord's, `batseg.enhancement`), the
postprocessing step that drops lesions below a minimum of it, and the report's field."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.enhancement import MIN_REFERENCE_VOXELS, cord_reference, enhancement_per_lesion
from batseg.errors import BATsegError
from batseg.lesions import label_lesions
from batseg.postprocess import postprocess
from batseg.report import lesion_report


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cord (signal 100) holding a lesion at 100 (the cord's own look) and one beside it at 250."""
    scan = np.full((10, 40, 20), 50.0, np.float32)
    cord = np.zeros(scan.shape, bool)
    cord[3:7, :, 8:12] = True
    scan[cord] = 100.0
    labels = np.zeros(scan.shape, np.uint8)
    labels[3:7, 5:10, 8:12] = 2  # over the cord, no brighter than it
    labels[3:7, 25:30, 13:17] = 1  # beside the cord, enhancing
    scan[labels == 1] = 250.0
    return scan, cord, labels


def test_the_reference_is_the_cord_away_from_the_lesions() -> None:
    scan, cord, labels = _scene()
    scan[3:7, 4:11, 8:12] = 400.0  # the cord under and around a lesion must not count
    scan[labels == 2] = 100.0
    assert cord_reference(scan, cord, labels > 0) == pytest.approx(100.0)
    assert cord_reference(scan, None, labels > 0) is None
    little = np.zeros(cord.shape, bool)
    little.flat[: MIN_REFERENCE_VOXELS - 1] = True
    assert cord_reference(scan + 1, little, np.zeros(cord.shape, bool)) is None
    # A normalised scan (many negative values): its zero is not "no signal", so no ratio is taken;
    # a few negative voxels (interpolation on a magnitude image) do not matter.
    assert cord_reference(scan - 75.0, cord, labels > 0) is None
    speckled = scan.copy()
    speckled.flat[::1000] = -5.0
    assert cord_reference(speckled, cord, labels > 0) == pytest.approx(100.0)


def test_each_lesion_gets_its_median_over_the_reference() -> None:
    scan, cord, labels = _scene()
    components, count = label_lesions(labels > 0)
    ratios = enhancement_per_lesion(scan, components, count, 100.0)
    assert np.isnan(ratios[0]) and sorted(ratios[1:]) == pytest.approx([1.0, 2.5])
    assert np.isnan(enhancement_per_lesion(scan, components, count, None)).all()


def test_a_minimum_enhancement_drops_the_lesion_that_is_the_cords_own_signal() -> None:
    scan, cord, labels = _scene()
    reference = cord_reference(scan, cord, labels > 0)
    kept = postprocess(labels, (1.0, 1.0, 1.0), min_volume_mm3=0, min_enhancement=1.2, volume=scan,
                       cord_signal=reference)
    assert not (kept == 2).any() and (kept == 1).sum() == (labels == 1).sum()
    # Without a cord reference nothing can be judged, and nothing is removed.
    assert np.array_equal(postprocess(labels, (1.0, 1.0, 1.0), min_volume_mm3=0, min_enhancement=1.2, volume=scan,
                                      cord_signal=None), labels)
    with pytest.raises(BATsegError, match="needs the scan"):
        postprocess(labels, (1.0, 1.0, 1.0), min_volume_mm3=0, min_enhancement=1.2, cord_signal=100.0)


def test_the_report_gives_each_lesion_its_enhancement_and_the_reference() -> None:
    scan, cord, labels = _scene()
    image = sitk.GetImageFromArray(labels)
    reference = cord_reference(scan, cord, labels > 0)
    report = lesion_report(image, None, "case", cord_mask=cord, volume=scan, cord_signal=reference)
    assert report["cord_signal"] == pytest.approx(100.0)
    assert sorted(lesion["enhancement"] for lesion in report["lesions"]) == pytest.approx([1.0, 2.5])
    plain = lesion_report(image, None, "case")
    assert plain["cord_signal"] is None and all(lesion["enhancement"] is None for lesion in plain["lesions"])


def test_the_margin_around_the_lesions_is_a_full_one_voxel_dilation() -> None:
    from scipy import ndimage

    from batseg.enhancement import _near

    tumour = np.random.default_rng(1).random((8, 30, 20)) > 0.995
    tumour[0, 0, 0] = tumour[-1, -1, -1] = True  # lesions at the array's corners
    full = ndimage.binary_dilation(tumour, structure=np.ones((3, 3, 3), bool))
    assert np.array_equal(_near(tumour), full)
    assert not _near(np.zeros((4, 4, 4), bool)).any()
