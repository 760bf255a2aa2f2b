"""Reslice the real healthy spinal MRIs of ../shared/data/real-spine-mri to a clinical sagittal grid.

The shipped model's card reports what it finds on real, tumour-free cords. The bundled real
scans are 1 mm isotropic; clinical sagittal T1 Gd is 0.5 x 0.5 mm in-plane with 3.3-4 mm
slices across left-right. This script writes each scan (and its manual cord mask, resampled
nearest-neighbour) on such a grid: index axes i anterior->posterior, j superior->inferior,
k across left-right, covering the scan's physical extent.

    python scripts/reslice_real_scans.py --out work_tmp/real_sagittal
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-spine-mri"
# (scan, cord mask) pairs; the axial spine-generic slab is only 16 mm long and is left out.
SCANS = {
    "sct_t1w": ("sct_testing_data/t1/t1w.nii.gz", "sct_testing_data/t1/t1w_seg-manual.nii.gz"),
    "sct_t2": ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz"),
    "errsm_11_t2": ("spinalcordtoolbox_2014/errsm_11/t2.nii.gz", "spinalcordtoolbox_2014/errsm_11/t2_manual_segmentation.nii.gz"),
    "errsm_18_t2": ("spinalcordtoolbox_2014/errsm_18/t2.nii.gz", "spinalcordtoolbox_2014/errsm_18/t2_manual_segmentation.nii.gz"),
}
# LPS direction columns of the sagittal grid: i -> posterior, j -> inferior, k -> right.
SAGITTAL_DIRECTION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Min and max LPS corner coordinates of the image's voxel centres."""
    size = image.GetSize()
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([c[0] * (size[0] - 1), c[1] * (size[1] - 1), c[2] * (size[2] - 1)])
        for c in np.ndindex(2, 2, 2)
    ]
    pts = np.array(corners)
    return pts.min(axis=0), pts.max(axis=0)


def sagittal_reference(image: sitk.Image, in_plane: float, slice_mm: float) -> sitk.Image:
    """An empty image on a sagittal grid covering `image`'s extent."""
    lo, hi = physical_bounds(image)
    spacing = (in_plane, in_plane, slice_mm)
    # Extent along each grid axis: i along P (LPS y), j along I (-z), k along R (-x).
    extent = [hi[1] - lo[1], hi[2] - lo[2], hi[0] - lo[0]]
    size = [max(1, int(np.floor(e / s)) + 1) for e, s in zip(extent, spacing)]
    # Origin = first voxel centre: most anterior (min y), most superior (max z), most left (max x),
    # since i runs toward posterior, j toward inferior and k toward right (-x).
    origin = (hi[0], lo[1], hi[2])
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing)
    reference.SetDirection(SAGITTAL_DIRECTION.flatten().tolist())
    reference.SetOrigin(origin)
    return reference


def reslice(image: sitk.Image, reference: sitk.Image, label: bool) -> sitk.Image:
    """`image` resampled onto `reference` (linear for images, nearest for masks)."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    pixel = sitk.sitkUInt8 if label else sitk.sitkFloat32
    return sitk.Resample(sitk.Cast(image, pixel), reference, sitk.Transform(), interpolator, 0.0, pixel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--in-plane", type=float, default=0.5)
    parser.add_argument("--slice", type=float, default=3.3)
    args = parser.parse_args()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "cord").mkdir(parents=True, exist_ok=True)
    for name, (scan, mask) in SCANS.items():
        image = sitk.ReadImage(str(REAL / scan))
        reference = sagittal_reference(image, args.in_plane, args.slice)
        sitk.WriteImage(reslice(image, reference, False), str(args.out / "images" / f"{name}.nii.gz"))
        cord = sitk.ReadImage(str(REAL / mask)) > 0.5
        sitk.WriteImage(reslice(cord, reference, True), str(args.out / "cord" / f"{name}.nii.gz"))
        print(f"{name}: {reference.GetSize()} voxels at {reference.GetSpacing()} mm")


if __name__ == "__main__":
    main()
