"""How much a lesion enhances: its median signal over the spinal cord's, on the scan itself.

BATseg reads post-contrast T1 scans, where all four tumour types are told from the cord by their
enhancement (METHOD.md section 6: meningioma and hemangioblastoma intense, ependymoma moderate to
intense; astrocytoma "absent, patchy or mild"). The normal cord does not enhance, so it is the
reference a radiologist uses: a lesion no brighter than the cord around it is, on this contrast,
hardly a tumour of these types, except a non-enhancing astrocytoma. A model that reports such a
lesion has mistaken the cord's own look for a tumour (model 0.10.0's false "ependymoma" over the cord
of the real T1 scan `sct_t1w` has a median 0.97 times the cord's). A minimum of it is an option of
`batseg predict`, not a default: on held-out lesions inserted into that real T1 scan it also
removed weakly enhancing ones (docs/real_anatomy.md).

Decisions:
- The reference is the median signal of the cord mask (the user's, or the located cord when
  trusted) away from every tumour voxel of the raw prediction (one voxel of margin, so partial
  volume at a lesion's rim does not count as cord). Fewer than `MIN_REFERENCE_VOXELS` such
  voxels, or a non-positive median, give no reference: nothing is then judged by enhancement.
  Nor does a scan of which more than `NORMALISED_SHARE` of the voxels are negative: a ratio of
  signals means something on magnitude images only, and such a scan has been normalised already
  (its zero is not "no signal"). A few negative voxels are kept: interpolation leaves them on
  real magnitude images (0.2 % of the spine-generic T2w scan in ../shared).
- The median of the lesion, not its mean or peak: cysts (dark) and a bright rim pull a mean;
  patchy enhancement raises a peak on a false lesion too.
- One reference per scan, not per level: a coil's smooth bias field changes the signal over the
  field of view, which a local reference would follow better, at the price of a reference that a
  long lesion leaves too little cord for. Kept simple until a real case shows the need.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_REFERENCE_VOXELS = 50
NORMALISED_SHARE = 0.01


def cord_reference(volume: np.ndarray, cord: np.ndarray | None, tumour: np.ndarray) -> float | None:
    """The median signal of `cord` one voxel or more away from `tumour` (module docstring); None if
    there is no cord, too little of it, a non-positive median, or a normalised scan."""
    if cord is None or np.count_nonzero(volume < 0) > NORMALISED_SHARE * volume.size:
        return None
    reference = cord.astype(bool) & ~_near(tumour)
    if np.count_nonzero(reference) < MIN_REFERENCE_VOXELS:
        return None
    value = float(np.median(volume[reference]))
    return value if value > 0 else None


def enhancement_per_lesion(volume: np.ndarray, components: np.ndarray, count: int,
                           reference: float | None) -> np.ndarray:
    """Each lesion's median signal over `reference` (index = component number; index 0 and every
    lesion without a reference are nan)."""
    ratios = np.full(count + 1, np.nan)
    if reference is None or count == 0:
        return ratios
    medians = ndimage.median(volume, labels=components, index=np.arange(1, count + 1))
    ratios[1:] = np.asarray(medians, dtype=float) / reference
    return ratios


def _near(tumour: np.ndarray) -> np.ndarray:
    """`tumour` grown by one voxel (26-connected), dilated only inside its bounding box: this runs on
    every case, and a lesion's box is a small part of the scan."""
    near = np.zeros(tumour.shape, bool)
    found = ndimage.find_objects(tumour.astype(np.uint8))
    if not found or found[0] is None:
        return near
    box = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(found[0], tumour.shape))
    near[box] = ndimage.binary_dilation(tumour[box], structure=np.ones((3,) * tumour.ndim, bool))
    return near
