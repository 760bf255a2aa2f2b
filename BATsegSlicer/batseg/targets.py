"""Training targets of the boundary head: BATseg's surface distance field and SiNGR's SiNG map.

Both targets are built from a label patch in SimpleITK / nnU-Net axis order (z, y, x) and a
`spacing` in the same order (for the project's sagittal data e.g. (3.3, 0.47, 0.47) mm). They
run in nnU-Net's data-augmentation workers on every training patch, after the spatial
augmentation, so they must be cheap: see "Speed" below.

BATseg surface distance field (paper 000, Eq. 1-2), per channel with member mask M:
  * inside M:  d = +(Euclidean distance in mm to the nearest voxel not in M);
  * outside M: d = -(Euclidean distance in mm to the nearest voxel in M);
  * D = max of d over M (the deepest point);
  * inside:  f = (d / D + 1) / 2, so f is in (0.5, 1] and exactly 1 at the deepest point;
  * outside: f = (d / (t * D) + 1) / 2 for |d| <= t * D, else 0 (truncation t > 0; t = 1 in
    the paper).  For t = 1 this is the paper's formula.  The paper does not say how to
    normalise for t > 1; decision: only the outside distances are divided by t * D, so the
    inside is unchanged, the band edge is still 0 and f stays in [0, 1].
Ablations of the paper's Table 5 (switches `normalise=False` and `truncation=None`):
  * without normalisation (truncated): the signed distance itself, in mm: d inside (in (0, D]),
    d outside for |d| <= t * D (in [-t * D, 0)), 0 beyond (Eq. 1 without Eq. 2);
  * without truncation and without normalisation: d everywhere, inside and outside;
  * without truncation but normalised is refused: the paper has no such row, and Eq. 2 maps the
    truncation band onto [0, 1], so without a band "normalised to [0, 1]" is undefined.
  Unnormalised fields are in mm (the distances of this module), not voxels, so the boundary
  loss's scale depends on the spacing; the head regressing them is linear (network.py).
  Decisions for the cases without a surface in view: an absent class is 0 when truncated
  (truncated everywhere, as in the normalised field) and -L when not truncated, and a class
  filling the patch is +L, where L = the patch diagonal in mm (sum of (n_a * s_a)^2, square
  root), more than any distance inside the patch: "farther than this patch can show", the
  counterpart of the normalised field's 0 and 1.
Distances use the voxel spacing (exact EDT, `scipy.ndimage.distance_transform_edt` with
`sampling=spacing`), so a 3.3 mm step between slices counts seven times a 0.47 mm step.
A voxel on the surface gets d = +/-(smallest spacing to its neighbour across the surface), so
surface voxels sit just above 0.5 inside and just below 0.5 outside.

Decisions the paper leaves open (recorded here):
  * the field is class-wise over the whole class mask, not per connected component: two
    lesions of one class share one D (the deeper lesion's);
  * a class absent from the patch gives f = 0 everywhere;
  * the patch border is NOT a surface: voxels outside the patch are unknown, and distances
    are measured only to voxels inside the patch.  This is exactly what the EDT computed on
    the patch itself gives, and it is right for a tumour cut by the patch border (it goes on
    beyond it);
  * consequently a class that fills the whole patch has no surface in view: its field is
    1 everywhere (the limit of a surface infinitely far away);
  * variants (`FIELD_VARIANTS`): "classwise" = one channel per tumour class 1..K-1 (the
    paper); "background" = the same plus channel 0 for the background class (label 0)
    computed with the same rule, i.e. inside = background, distance to the nearest tumour
    voxel; a tumour-free patch therefore gives a background channel of 1 everywhere;
    "agnostic" = one channel for the union of all tumour labels (>= 1), the paper's
    class-agnostic ablation.

SiNG target (SiNGR, paper 002, Eq. 3-5) with lambda = 0 (plain Euclidean distance; the
paper's geodesic term is not used) and margin delta = 0.5, per tumour class:
  * inside:  0.5 + 0.5 * d / D, in (0.5, 1];
  * outside within the band |d| <= beta = D ("as deep as the tumour"):
    -(0.5 + 0.5 * |d| / D), in [-1, -0.5);
  * further out: -1; absent class: -1 everywhere; a class filling the patch: 1 everywhere.
The paper measures G to a Canny-extracted boundary set; here the same voxel EDT as for the
BATseg field is used (distance to the nearest voxel of the other side), so the band and the
normaliser tau = beta = D coincide with the BATseg field at t = 1.

Speed: the exact field only needs distance transforms around each class.  With B the class
bounding box (from one `scipy.ndimage.find_objects` pass):
  * the inside distances are computed on B grown by 1 voxel: every voxel of that 1-voxel
    ring inside the patch is a non-member, and clamping any farther non-member onto the ring
    shortens every axis offset, so the nearest non-member of an inside voxel always lies in
    the grown box (the result, and hence D, are exact);
  * the outside band lies within B grown by floor(t * D / s_a) + 1 voxels along each axis a
    (a voxel farther out along axis a is more than t * D + s_a mm from every member), and
    all members lie in B, so the EDT of the non-members on that box is exact on the band;
    everything beyond it is 0 (or -1 for SiNG). Without truncation the band is the patch.
`Testing/test_targets.py` checks that this equals a full-patch computation exactly, and
`scripts/bench_targets.py` measures the speed-up.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import ndimage

from .errors import BATsegError

FIELD_VARIANTS = ("classwise", "background", "agnostic")

Box = tuple[slice, ...]
Membership = Callable[[Box], np.ndarray]  # box -> bool mask of the channel's members in it


@dataclass(frozen=True)
class _ClassDistances:
    """The distances of one channel, restricted to where they matter."""

    fills_patch: bool  # every voxel is a member: no surface in view
    inner: Box  # bounding box grown by 1 voxel
    inside: np.ndarray  # bool members, on `inner`
    depth_in: np.ndarray  # mm from each member to the nearest non-member, on `inner`
    depth: float  # D: the largest depth_in
    band: Box  # bounding box grown by the truncation margin
    dist_out: np.ndarray  # mm from each voxel to the nearest member, on `band`


def field_channels(variant: str, num_classes: int = 5) -> int:
    """Number of channels of the surface distance field for `variant` and K = num_classes."""
    _check_variant(variant)
    _check_num_classes(num_classes)
    return {"classwise": num_classes - 1, "background": num_classes, "agnostic": 1}[variant]


def surface_distance_field(
    label: np.ndarray,
    spacing: Sequence[float],
    num_classes: int = 5,
    truncation: Optional[float] = 1.0,
    variant: str = "classwise",
    normalise: bool = True,
) -> np.ndarray:
    """BATseg's truncated, normalised surface distance field of a label patch.

    Returns float32 of shape (C, *label.shape) with C = field_channels(variant, num_classes),
    values in [0, 1]; with `normalise=False` signed distances in mm instead, and with
    `truncation=None` (only together with `normalise=False`) untruncated ones: the paper's
    Table 5 ablations. See the module docstring for the exact definition and decisions.
    """
    label, spacing = _checked(label, spacing, num_classes)
    _check_variant(variant)
    check_field_settings(truncation, normalise)
    far = 0.0 if truncation is not None else -patch_diagonal(label.shape, spacing)
    out = np.full((field_channels(variant, num_classes),) + label.shape, far, dtype=np.float32)
    for channel, (members, box) in enumerate(_channels(label, num_classes, variant)):
        if box is None:
            continue
        dist = _class_distances(members, box, label.shape, spacing, truncation)
        if normalise:
            _write_field(out[channel], dist, float(truncation))
        else:
            _write_distances(out[channel], dist, truncation, patch_diagonal(label.shape, spacing))
    return out


def check_field_settings(truncation: Any, normalise: Any) -> None:
    """BATsegError unless `truncation` is None or a finite positive number and `normalise` a bool,
    and an untruncated field is not to be normalised (see the module docstring)."""
    if not isinstance(normalise, bool):
        raise BATsegError(f"normalise must be true or false; got {normalise!r:.40}")
    if truncation is None:
        if normalise:
            raise BATsegError(
                "an untruncated field cannot be normalised to [0, 1] (Eq. 2 maps the truncation band); "
                "turn normalisation off too (the paper's Table 5 row without either)"
            )
        return
    number = isinstance(truncation, numbers.Real) and not isinstance(truncation, bool)
    if not (number and math.isfinite(truncation) and truncation > 0):
        raise BATsegError(f"truncation must be a positive number (1, 2 or 3) or none; got {truncation!r:.40}")


def patch_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The diagonal of the patch in mm: more than any distance between two of its voxels."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def sing_target(label: np.ndarray, spacing: Sequence[float], num_classes: int = 5) -> np.ndarray:
    """SiNGR's signed normalised transform (lambda = 0, delta = 0.5), one channel per tumour class.

    Returns float32 of shape (num_classes - 1, *label.shape) with values in [-1, 1]:
    positive inside the class, negative outside (see the module docstring).
    """
    label, spacing = _checked(label, spacing, num_classes)
    out = np.full((num_classes - 1,) + label.shape, -1.0, dtype=np.float32)
    for channel, (members, box) in enumerate(_channels(label, num_classes, "classwise")):
        if box is not None:
            _write_sing(out[channel], _class_distances(members, box, label.shape, spacing, 1.0))
    return out


def _write_field(out: np.ndarray, dist: _ClassDistances, truncation: float) -> None:
    """Fill one zeroed channel with the BATseg field of one class."""
    if dist.fills_patch:
        out[...] = 1.0
        return
    # The formulas are written exactly as in the module docstring (and the paper), so the
    # cropped result is bit-identical to a full-patch computation.  Outside voxels past the
    # band give (1 - x) / 2 < 0 and are clipped to the truncation value 0.
    out[dist.band] = np.maximum((1.0 - dist.dist_out / (truncation * dist.depth)) / 2.0, 0.0)
    out[dist.inner][dist.inside] = (dist.depth_in[dist.inside] / dist.depth + 1.0) / 2.0


def _write_distances(out: np.ndarray, dist: _ClassDistances, truncation: Optional[float], diagonal: float) -> None:
    """Fill one channel (pre-filled with its far value) with the unnormalised field of one class."""
    if dist.fills_patch:
        out[...] = diagonal  # deeper than the patch can show (module docstring)
        return
    if truncation is None:
        out[dist.band] = -dist.dist_out  # the band is the whole patch
    else:
        # Eq. 1: d * 1(|d| <= t * D), the indicator inclusive as in the paper.
        kept = dist.dist_out <= truncation * dist.depth
        out[dist.band] = np.where(kept, -dist.dist_out, 0.0)
    out[dist.inner][dist.inside] = dist.depth_in[dist.inside]


def _write_sing(out: np.ndarray, dist: _ClassDistances) -> None:
    """Fill one channel pre-filled with -1 with the SiNG map of one class."""
    if dist.fills_patch:
        out[...] = 1.0
        return
    # -(0.5 + 0.5 x) < -1 exactly when x > 1, i.e. beyond the band: clip to the far value.
    out[dist.band] = np.maximum(-(dist.dist_out / dist.depth + 1.0) / 2.0, -1.0)
    out[dist.inner][dist.inside] = (dist.depth_in[dist.inside] / dist.depth + 1.0) / 2.0


def _class_distances(
    members: Membership,
    box: Box,
    shape: tuple[int, ...],
    spacing: tuple[float, ...],
    band_factor: Optional[float],
) -> _ClassDistances:
    """Exact inside depths and outside distances of one channel, cropped (see module docstring);
    `band_factor` None (no truncation): the outside distances over the whole patch."""
    inner = _grow(box, (1,) * len(shape), shape)
    inside = members(inner)
    if inside.all():
        # The 1-voxel ring holds no non-member, so the ring is empty: the class is the patch.
        empty = np.zeros((0,) * len(shape))
        return _ClassDistances(True, inner, inside, empty, math.inf, inner, empty)
    depth_in = ndimage.distance_transform_edt(inside, sampling=spacing)
    depth = float(depth_in[inside].max())
    if band_factor is None:
        margin = tuple(shape)  # grows the box to the whole patch
    else:
        margin = tuple(int(band_factor * depth / s) + 1 for s in spacing)
    band = _grow(box, margin, shape)
    dist_out = ndimage.distance_transform_edt(~members(band), sampling=spacing)
    return _ClassDistances(False, inner, inside, depth_in, depth, band, dist_out)


def _channels(
    label: np.ndarray, num_classes: int, variant: str
) -> list[tuple[Membership, Optional[Box]]]:
    """(membership test, bounding box or None when absent) for each channel of `variant`."""
    boxes = ndimage.find_objects(label, max_label=num_classes - 1)
    tumour = [(_equal_to(label, k), boxes[k - 1]) for k in range(1, num_classes)]
    if variant == "classwise":
        return tumour
    if variant == "agnostic":
        return [(lambda box: label[box] >= 1, _union(boxes))]
    return [(_equal_to(label, 0), _bbox(label == 0))] + tumour


def _equal_to(label: np.ndarray, value: int) -> Membership:
    return lambda box: label[box] == value


def _grow(box: Box, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """`box` grown by `margin` voxels per axis, clipped to the patch."""
    return tuple(
        slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(box, margin, shape)
    )


def _union(boxes: Sequence[Optional[Box]]) -> Optional[Box]:
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return tuple(
        slice(min(b[a].start for b in present), max(b[a].stop for b in present))
        for a in range(len(present[0]))
    )


def _bbox(mask: np.ndarray) -> Optional[Box]:
    """Bounding box of a boolean mask, or None when it is empty."""
    boxes = ndimage.find_objects(mask.astype(np.uint8))
    return boxes[0] if boxes else None


def _checked(
    label: np.ndarray, spacing: Sequence[float], num_classes: int
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Validated integer label and spacing tuple; BATsegError on bad input."""
    _check_num_classes(num_classes)
    label = np.asarray(label)
    if label.ndim == 0 or label.size == 0:
        raise BATsegError(f"the label patch must be a non-empty array; got shape {label.shape}")
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)):
        if not np.array_equal(np.rint(label), label):
            raise BATsegError(
                "the label patch must hold whole class numbers; got fractions or NaN"
            )
    low, high = float(label.min()), float(label.max())
    if low < 0 or high >= num_classes:
        raise BATsegError(
            f"label values must be in 0..{num_classes - 1}; got {low:g}..{high:g} "
            "(map nnU-Net's -1 padding label to 0 before building targets)"
        )
    if label.dtype == bool or not np.issubdtype(label.dtype, np.integer):
        label = label.astype(np.min_scalar_type(num_classes - 1))  # find_objects needs integers
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != label.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise BATsegError(
            f"spacing must be {label.ndim} positive numbers in the label's axis order; "
            f"got {spacing}"
        )
    return label, spacing


def _check_variant(variant: str) -> None:
    if variant not in FIELD_VARIANTS:
        raise BATsegError(
            f"unknown field variant {variant!r}; choose one of {', '.join(FIELD_VARIANTS)}"
        )


def _check_num_classes(num_classes: int) -> None:
    integral = isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool)
    if not integral or num_classes < 2:
        raise BATsegError(
            f"num_classes must be an integer >= 2 (background included); got {num_classes!r}"
        )
