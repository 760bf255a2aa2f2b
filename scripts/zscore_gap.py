"""Where the cord and the lesions stand after nnU-Net's normalisation, per background.

nnU-Net z-scores each MRI case as a whole (mean and standard deviation of every voxel), so a
lesion's input to the network is its brightness in standard deviations of the whole scan, which
depends on the tissue and air around the cord, not only on the lesion. This prints, for each
background of a data set written by scripts/make_real_insertions.py (or any nnU-Net raw set with
`cordTr` masks), the median z-score of the cord (lesion voxels excluded) and of the lesions, and
the 90th percentile of the scan: a training set whose cord stands at z 3.5 teaches a network
little about a real T1 whose cord stands at 1.4.

    python scripts/zscore_gap.py WORK_DIR/real_test/Dataset512_BATsegRealInsertTest WORK_DIR/real_train/...

`--n4` and `--gamma G` first apply the intensity standardisation of the Stanford poster
(../shared/papers/004_*: N4 bias-field correction, then a gamma on the [0, 1] range) to every case,
as a model trained and run with it would see them: whether they narrow the gap between the
training backgrounds and a held-out real T1 is then read off the same table (issue 13, direction 4).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def n4_corrected(image: sitk.Image) -> sitk.Image:
    """SimpleITK's N4 on an Otsu foreground, fitted at half resolution (as usual, for speed) and applied
    at full resolution."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    foreground = sitk.OtsuThreshold(image, 0, 1, 200)
    shrink = [2 if size >= 16 else 1 for size in image.GetSize()]  # thin sagittal stacks keep their slices
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([50] * 4)
    n4.Execute(sitk.Shrink(image, shrink), sitk.Shrink(foreground, shrink))
    return image / sitk.Exp(n4.GetLogBiasFieldAsImage(image))


def standardised(image: sitk.Image, n4: bool, gamma: float | None) -> np.ndarray:
    """The case as the network would see it before its z-score: N4 and/or gamma, or as it is."""
    if n4:
        image = n4_corrected(image)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    if gamma is not None:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / max(high - low, 1e-6)) ** gamma
    return array


def case_figures(image: np.ndarray, label: np.ndarray, cord: np.ndarray) -> dict[str, float]:
    """Median z of the cord without lesion, of the lesion (nan if none), and the scan's 90th percentile."""
    z = (image - image.mean()) / max(float(image.std()), 1e-6)
    cord_only = (cord > 0) & (label == 0)
    return {"cord": float(np.median(z[cord_only])) if cord_only.any() else float("nan"),
            "lesion": float(np.median(z[label > 0])) if (label > 0).any() else float("nan"),
            "p90": float(np.percentile(z, 90))}


def dataset_figures(folder: Path, n4: bool = False, gamma: float | None = None,
                    limit: int | None = None) -> dict[str, dict[str, float]]:
    """Per background (or 'all' without insertions.json): cases and the medians of case_figures."""
    if not (folder / "cordTr").is_dir():
        sys.exit(f"{folder} has no cordTr folder: give a data set written by scripts/make_real_insertions.py")
    meta_file = folder / "insertions.json"
    backgrounds = {c: m["background"] for c, m in json.loads(meta_file.read_text())["cases"].items()} if meta_file.is_file() else {}
    per: dict[str, list[dict[str, float]]] = defaultdict(list)
    for image_file in sorted((folder / "imagesTr").glob("*_0000.nii.gz"))[:limit]:
        case = image_file.name[: -len("_0000.nii.gz")]
        image = standardised(sitk.ReadImage(str(image_file)), n4, gamma)
        masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in
                 (folder / "labelsTr" / f"{case}.nii.gz", folder / "cordTr" / f"{case}.nii.gz")]
        per[backgrounds.get(case, "all")].append(case_figures(image, *masks))
    return {name: {"cases": len(rows), **{key: float(np.nanmedian([r[key] for r in rows])) if
                                          any(np.isfinite(r[key]) for r in rows) else float("nan")
                                          for key in ("cord", "lesion", "p90")}}
            for name, rows in sorted(per.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, nargs="+", help="nnU-Net raw data set folders with cordTr")
    parser.add_argument("--n4", action="store_true", help="N4 bias-field correction of each case first")
    parser.add_argument("--gamma", type=float, help="then this gamma on the case's [0, 1] range")
    parser.add_argument("--limit", type=int, help="only the first N cases of each data set (N4 takes seconds a case)")
    args = parser.parse_args()
    print("| data set | background | cases | cord z (median) | lesion z (median) | scan 90th percentile z |")
    print("|---|---|---|---|---|---|")
    for folder in args.datasets:
        for name, f in dataset_figures(folder, args.n4, args.gamma, args.limit).items():
            print(f"| {folder} | {name} | {f['cases']} | {f['cord']:.2f} | {f['lesion']:.2f} | {f['p90']:.2f} |")


if __name__ == "__main__":
    main()
