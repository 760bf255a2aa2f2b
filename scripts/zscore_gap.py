"""Where the cord and the lesions stand after nnU-Net's normalisation, per background.

nnU-Net z-scores each MRI case as a whole (mean and standard deviation of every voxel), so a
lesion's input to the network is its brightness in standard deviations of the whole scan, which
depends on the tissue and air around the cord, not only on the lesion. This prints, for each
background of a data set written by scripts/make_real_insertions.py (or any nnU-Net raw set with
`cordTr` masks), the median z-score of the cord (lesion voxels excluded) and of the lesions, and
the 90th percentile of the scan: a training set whose cord stands at z 3.5 teaches a network
little about a real T1 whose cord stands at 1.4.

    python scripts/zscore_gap.py WORK_DIR/real_test/Dataset512_BATsegRealInsertTest WORK_DIR/real_train/...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def case_figures(image: np.ndarray, label: np.ndarray, cord: np.ndarray) -> dict[str, float]:
    """Median z of the cord without lesion, of the lesion (nan if none), and the scan's 90th percentile."""
    z = (image - image.mean()) / max(float(image.std()), 1e-6)
    cord_only = (cord > 0) & (label == 0)
    return {"cord": float(np.median(z[cord_only])) if cord_only.any() else float("nan"),
            "lesion": float(np.median(z[label > 0])) if (label > 0).any() else float("nan"),
            "p90": float(np.percentile(z, 90))}


def dataset_figures(folder: Path) -> dict[str, dict[str, float]]:
    """Per background (or 'all' without insertions.json): cases and the medians of case_figures."""
    if not (folder / "cordTr").is_dir():
        sys.exit(f"{folder} has no cordTr folder: give a data set written by scripts/make_real_insertions.py")
    meta_file = folder / "insertions.json"
    backgrounds = {c: m["background"] for c, m in json.loads(meta_file.read_text())["cases"].items()} if meta_file.is_file() else {}
    per: dict[str, list[dict[str, float]]] = defaultdict(list)
    for image_file in sorted((folder / "imagesTr").glob("*_0000.nii.gz")):
        case = image_file.name[: -len("_0000.nii.gz")]
        arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float32) for p in
                  (image_file, folder / "labelsTr" / f"{case}.nii.gz", folder / "cordTr" / f"{case}.nii.gz")]
        per[backgrounds.get(case, "all")].append(case_figures(*arrays))
    return {name: {"cases": len(rows), **{key: float(np.nanmedian([r[key] for r in rows])) if
                                          any(np.isfinite(r[key]) for r in rows) else float("nan")
                                          for key in ("cord", "lesion", "p90")}}
            for name, rows in sorted(per.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path, nargs="+", help="nnU-Net raw data set folders with cordTr")
    args = parser.parse_args()
    print("| data set | background | cases | cord z (median) | lesion z (median) | scan 90th percentile z |")
    print("|---|---|---|---|---|---|")
    for folder in args.datasets:
        for name, f in dataset_figures(folder).items():
            print(f"| {folder} | {name} | {f['cases']} | {f['cord']:.2f} | {f['lesion']:.2f} | {f['p90']:.2f} |")


if __name__ == "__main__":
    main()
