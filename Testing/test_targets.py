"""Tests of batseg.targets: BATseg surface distance field and SiNG target values, variants,
the patch-border decision, and the cropped computation against a naive full-patch one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from batseg.errors import BATsegError
from batseg.targets import FIELD_VARIANTS, field_channels, sing_target, surface_distance_field

ANISO = (3.3, 0.47, 0.47)


def naive_field(label, spacing, num_classes=5, truncation=1.0, variant="classwise"):
    """Reference: full-patch EDTs, the paper's formula written out, no cropping."""
    if variant == "classwise":
        masks = [label == k for k in range(1, num_classes)]
    elif variant == "background":
        masks = [label == k for k in range(num_classes)]
    else:
        masks = [label >= 1]
    channels = []
    for m in masks:
        if not m.any():
            channels.append(np.zeros(label.shape, np.float32))
            continue
        if m.all():
            channels.append(np.ones(label.shape, np.float32))
            continue
        inside = ndimage.distance_transform_edt(m, sampling=spacing)
        outside = ndimage.distance_transform_edt(~m, sampling=spacing)
        d = np.where(m, inside, -outside)
        depth = d[m].max()
        t_depth = truncation * depth
        f = np.where(m, (d / depth + 1) / 2, np.where(-d <= t_depth, (d / t_depth + 1) / 2, 0.0))
        channels.append(f.astype(np.float32))
    return np.stack(channels)


def box_label(shape=(11, 40, 40), box=(slice(3, 8), slice(10, 31), slice(12, 29)), value=1):
    label = np.zeros(shape, np.int16)
    label[box] = value
    return label


def analytic_box_distance(shape, box, spacing):
    """Signed mm distance of every voxel to an axis-aligned box, worked out by hand.

    Inside: the nearest non-member lies straight across one face: min over axes and sides of
    (steps to the first voxel past the face) * spacing.  Outside: Euclidean norm of the
    per-axis gaps (in mm) to the box's voxel range.
    """
    idx = np.indices(shape)
    inside_steps, gaps = [], []
    for a, (sl, s) in enumerate(zip(box, spacing)):
        lo, hi = sl.start, sl.stop - 1
        inside_steps.append(np.minimum(idx[a] - (lo - 1), (hi + 1) - idx[a]) * s)
        gaps.append(np.maximum(np.maximum(lo - idx[a], idx[a] - hi), 0) * s)
    inside = np.min(inside_steps, axis=0)
    outside = np.sqrt(np.sum(np.square(gaps), axis=0))
    member = np.zeros(shape, bool)
    member[box] = True
    return np.where(member, inside, -outside), member


def test_box_matches_hand_computed_field():
    shape, box = (11, 40, 40), (slice(3, 8), slice(10, 31), slice(12, 29))
    for truncation in (1.0, 2.0):
        field = surface_distance_field(box_label(shape, box), ANISO, truncation=truncation)
        d, member = analytic_box_distance(shape, box, ANISO)
        depth = d[member].max()  # 17 voxels along x: 9 steps of 0.47 mm
        assert depth == pytest.approx(9 * 0.47)
        expected = np.where(
            member,
            (d / depth + 1) / 2,
            np.clip((1 + d / (truncation * depth)) / 2, 0, None),
        )
        np.testing.assert_allclose(field[0], expected, rtol=0, atol=1e-6)
        assert not field[1:].any()


def test_sphere_values_in_anisotropic_grid():
    shape, spacing, radius = (13, 90, 90), ANISO, 10.0
    centre = (np.array(shape) - 1) / 2
    mm = [(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)]
    r = np.sqrt(sum(np.square(g) for g in np.meshgrid(*mm, indexing="ij")))
    label = (r <= radius).astype(np.uint8) * 3
    member = label == 3
    field = surface_distance_field(label, spacing)
    f = field[2]
    assert field.dtype == np.float32 and field.shape == (4,) + shape
    assert f.min() >= 0 and f.max() == 1.0  # deepest point exactly 1
    assert f[member].min() > 0.5 and f[~member].max() < 0.5
    # The centre voxel is the deepest point; its depth is at most the radius.
    assert f[tuple(int(c) for c in centre)] == 1.0
    depth_mm = ndimage.distance_transform_edt(member, sampling=spacing).max()
    assert depth_mm <= radius + max(spacing)
    # Surface voxels: a neighbour across the surface along axis a is s_a mm away.
    for axis, s in enumerate(spacing):
        for shift in (1, -1):
            across = member & ~np.roll(member, shift, axis=axis)
            assert f[across].max() <= 0.5 + s / (2 * depth_mm) + 1e-6
            assert f[across].min() > 0.5
    # Voxels farther than depth + one voxel diagonal from the sphere are truncated to 0.
    far = r > radius + depth_mm + np.linalg.norm(spacing)
    assert far.any() and not f[far].any()
    # ... and the band is not empty: outside voxels next to the sphere are in (0, 0.5).
    near = ~member & (r <= radius + min(spacing))
    assert (f[near] > 0).all()


def test_absent_classes_are_zero_and_present_class_is_not():
    label = box_label(value=2)
    field = surface_distance_field(label, ANISO)
    assert field[1].max() == 1.0
    for channel in (0, 2, 3):
        assert not field[channel].any()
    assert not surface_distance_field(np.zeros((4, 6, 6), np.uint8), ANISO).any()


def test_anisotropy_changes_the_field_in_the_expected_direction():
    label = box_label((15, 40, 40), (slice(4, 11), slice(10, 31), slice(10, 31)))
    centre_y = centre_x = 20
    above = (11, centre_y, centre_x)  # one slice past the box along z
    beside = (7, centre_y, 31)  # one voxel past the box along x
    iso = surface_distance_field(label, (1.0, 1.0, 1.0))[0]
    aniso = surface_distance_field(label, ANISO)[0]
    # Isotropic: one step out is the same distance along every axis.
    assert iso[above] == iso[beside] > 0
    # Thick slices: one slice out is 3.3 mm, one pixel out 0.47 mm, so the field falls
    # faster across slices: the z-neighbour is lower, and two slices out (6.6 mm) are past
    # the band (depth = 11 * 0.47 = 5.17 mm) while iso keeps them in it.
    assert aniso[above] < aniso[beside]
    assert aniso[above] == pytest.approx((1 - 3.3 / (11 * 0.47)) / 2, abs=1e-6)
    assert aniso[12, centre_y, centre_x] == 0 and iso[12, centre_y, centre_x] > 0


def test_wider_truncation_widens_the_band():
    label = box_label()
    member = label == 1
    f1 = surface_distance_field(label, ANISO, truncation=1.0)[0]
    f2 = surface_distance_field(label, ANISO, truncation=2.0)[0]
    f3 = surface_distance_field(label, ANISO, truncation=3.0)[0]
    np.testing.assert_array_equal(f1[member], f2[member])  # inside unchanged
    assert (f2[~member] >= f1[~member]).all()
    support1, support2 = f1 > 0, f2 > 0
    assert (support2 & ~support1).any() and not (support1 & ~support2).any()
    assert (f3 > 0).sum() > support2.sum()
    assert f3.min() >= 0 and f3.max() <= 1


def test_patch_border_is_not_a_surface():
    # A slab cut by the patch border at x = 0: the tumour goes on beyond the patch, so the
    # border voxels are the deepest, not surface voxels.
    label = np.zeros((5, 20, 20), np.uint8)
    label[:, :, :6] = 1
    f = surface_distance_field(label, ANISO)[0]
    assert (f[:, :, 0] == 1.0).all()
    np.testing.assert_allclose(f[0, 0, :6], [(6 - x) / 6 / 2 + 0.5 for x in range(6)], atol=1e-6)
    # A class filling the whole patch has no surface in view: 1 everywhere.
    assert (surface_distance_field(np.full((3, 4, 5), 4, np.uint8), ANISO)[3] == 1).all()


def test_variants_shapes_and_values():
    label = box_label()
    label[2:5, 30:36, 30:38] = 3
    classwise = surface_distance_field(label, ANISO)
    agnostic = surface_distance_field(label, ANISO, variant="agnostic")
    background = surface_distance_field(label, ANISO, variant="background")
    assert [field_channels(v) for v in FIELD_VARIANTS] == [4, 5, 1]
    assert field_channels("classwise", num_classes=3) == 2
    assert classwise.shape == (4,) + label.shape
    assert agnostic.shape == (1,) + label.shape and background.shape == (5,) + label.shape
    # Agnostic = the field of the union as a single class.
    union = surface_distance_field((label >= 1).astype(np.uint8), ANISO)[0]
    np.testing.assert_array_equal(agnostic[0], union)
    assert not np.array_equal(agnostic[0], classwise[0])  # the other lesion changes D/band
    # Background: tumour channels as classwise; channel 0 has background inside.
    np.testing.assert_array_equal(background[1:], classwise)
    assert background[0][label == 0].min() > 0.5 and background[0][label > 0].max() < 0.5
    assert background[0].max() == 1.0
    empty = np.zeros((3, 8, 8), np.uint8)
    tumour_free = surface_distance_field(empty, ANISO, variant="background")
    assert (tumour_free[0] == 1).all() and not tumour_free[1:].any()


def random_label(rng, shape):
    """Blobby multi-class label: smoothed noise at three thresholds, touching borders too."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), (0.7, 3, 3))
    label = np.zeros(shape, np.uint8)
    for q in (0.9, 0.95, 0.985):
        label[noise > np.quantile(noise, q)] = rng.integers(1, 5)
    return label


@pytest.mark.parametrize("seed", range(6))
def test_cropped_equals_naive_full_patch(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(6, 14)), int(rng.integers(30, 70)), int(rng.integers(30, 70)))
    label = random_label(rng, shape)
    spacing = [ANISO, (3.3, 0.94, 0.94), (1.0, 1.0, 1.0)][seed % 3]
    for variant in FIELD_VARIANTS:
        for truncation in (1.0, 2.0, 3.0):
            fast = surface_distance_field(label, spacing, truncation=truncation, variant=variant)
            slow = naive_field(label, spacing, truncation=truncation, variant=variant)
            np.testing.assert_array_equal(fast, slow)


def test_cropped_equals_naive_small_lesions_in_large_patch():
    label = np.zeros((12, 160, 160), np.uint8)
    label[5:7, 40:60, 50:58] = 2  # D < 3.3 mm: no full slice of margin along z
    label[0:3, 120:160, 100:130] = 4  # touching two patch borders
    label[11, 10, 10] = 1  # a single voxel
    np.testing.assert_array_equal(
        surface_distance_field(label, ANISO, truncation=2.0),
        naive_field(label, ANISO, truncation=2.0),
    )


def test_float_and_bool_labels_give_the_same_field():
    label = box_label()
    expected = surface_distance_field(label, ANISO)
    as_float = surface_distance_field(label.astype(np.float32), ANISO)
    np.testing.assert_array_equal(as_float, expected)
    np.testing.assert_array_equal(surface_distance_field(label.astype(bool), ANISO), expected)


def test_sing_target_ranges_and_signs():
    label = box_label()
    label[2:5, 30:36, 30:38] = 3
    sing = sing_target(label, ANISO)
    field = surface_distance_field(label, ANISO)
    assert sing.dtype == np.float32 and sing.shape == (4,) + label.shape
    for channel, k in ((0, 1), (2, 3)):
        s, member = sing[channel], label == k
        assert s[member].min() > 0.5 and s[member].max() == 1.0
        assert s[~member].max() < -0.5 and s[~member].min() == -1.0
        band = ~member & (field[channel] > 0)
        assert band.any() and (s[band] > -1).all()
        # Same distances as the BATseg field at t = 1: inside equal, outside shifted by -1.
        np.testing.assert_array_equal(s[member], field[channel][member])
        np.testing.assert_allclose(s[~member], field[channel][~member] - 1, atol=1e-6)
    assert (sing[1] == -1).all() and (sing[3] == -1).all()  # absent classes
    # Hand-computed: one slice above class 1's box is 3.3 mm out, depth 9 * 0.47 mm.
    assert sing[0, 8, 20, 20] == pytest.approx(-(0.5 + 0.5 * 3.3 / (9 * 0.47)), abs=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda: surface_distance_field(np.zeros((3, 4, 5), np.uint8), (1.0, 1.0)),
        lambda: surface_distance_field(np.zeros((3, 4, 5), np.uint8), (1.0, 0.0, 1.0)),
        lambda: surface_distance_field(np.full((3, 4, 5), -1, np.int16), ANISO),
        lambda: surface_distance_field(np.full((3, 4, 5), 5, np.int16), ANISO),
        lambda: surface_distance_field(np.full((3, 4, 5), 0.5), ANISO),
        lambda: surface_distance_field(np.zeros((3, 4, 5), np.uint8), ANISO, truncation=0),
        lambda: surface_distance_field(np.zeros((3, 4, 5), np.uint8), ANISO, variant="perclass"),
        lambda: sing_target(np.zeros((3, 4, 5), np.uint8), ANISO, num_classes=1),
        lambda: field_channels("nope"),
    ],
)
def test_bad_input_raises_batseg_error(call):
    with pytest.raises(BATsegError):
        call()
