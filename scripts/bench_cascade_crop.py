"""The cascade crop against the whole-volume prediction: same cases, same model, same run.

For a folder of cases with ground truth and spinal cord masks (an nnU-Net raw data set with a
cordTr folder, as `batseg phantom` and scripts/make_real_insertions.py write), runs `batseg
predict` twice, as a user would: on the whole volume (`--no-crop --no-cord-locator`), and with the
cascade crop `--crop-to-cord MARGIN` (batseg/inference/canal_crop.py) around the cord that batseg's
cord locator finds (`--cord-source locator`, the default, as `batseg predict` does by default) or
around the data set's own cord masks (`--cord-source mask`: `--cord-masks cordTr`); scores both against the truth with
`batseg evaluate`; and compares them with each other: per-class Dice between the two label maps
(pooled over the cases), and whether every lesion of the whole-volume prediction that matches a
true lesion is kept by the crop. Prints one Markdown table and writes OUT/cascade_crop.json.

    python scripts/bench_cascade_crop.py --data WORK_DIR/test/Dataset502_BATsegPhantomsTest \\
        --out WORK_DIR/crop_eval [--model MODEL.batseg] [--margin 25] [--threads 2] [--cord-source locator|mask]

Timing is the wall time of each `batseg predict` over the whole folder (one process each, the
ONNX cache warmed first), so the ratio is measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from batseg.metrics import DETECTION_MIN_OVERLAP_MM3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_card import summary  # noqa: E402  (the model card's headline figures)

CLASSES = {1: "meningioma", 2: "ependymoma", 3: "astrocytoma", 4: "hemangioblastoma"}


def batseg(*args: str) -> float:
    """Run `batseg ARGS`; the wall time in seconds (exit on failure, with its message)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "batseg", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"batseg {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


def predict(data: Path, out: Path, model: str | None, threads: int, crop: float | None, cord_source: str) -> float:
    args = ["predict", "-i", str(data / "imagesTr"), "-o", str(out), "--device", "cpu", "--threads", str(threads),
            "--overwrite", "--progress", "quiet"]
    if model:
        args += ["--model", model]
    if crop is None:
        args += ["--no-crop", "--no-cord-locator"]
    else:
        args += ["--crop-to-cord", f"{crop:g}"] + (["--cord-masks", str(data / "cordTr")] if cord_source == "mask" else [])
    return batseg(*args)


def evaluate(pred: Path, truth: Path, out: Path) -> dict[str, Any]:
    batseg("evaluate", "--pred", str(pred), "--gt", str(truth), "-o", str(out), "--overwrite", "--progress", "quiet")
    return summary(json.loads(out.read_text()))


def _true_lesions_found(pred: np.ndarray, truth: np.ndarray, min_voxels: int) -> np.ndarray:
    """The components of `pred` (tumour vs background) that overlap a true lesion enough."""
    components, count = ndimage.label(pred > 0)
    if count == 0:
        return np.zeros(pred.shape, bool)
    overlap = ndimage.sum(truth > 0, components, index=np.arange(1, count + 1))
    keep = np.flatnonzero(overlap >= min_voxels) + 1
    return np.isin(components, keep)


def agreement(whole_dir: Path, crop_dir: Path, truth_dir: Path) -> dict[str, Any]:
    """Pooled per-class Dice between the two predictions, and the true-positive lesions the crop lost."""
    both = {value: [0, 0] for value in CLASSES}  # intersection, sum of sizes
    lost, kept_total, identical = [], 0, 0
    cases = sorted(p for p in truth_dir.glob("*.nii.gz"))
    for truth_path in cases:
        truth_image = sitk.ReadImage(str(truth_path))
        truth = sitk.GetArrayFromImage(truth_image)
        whole = sitk.GetArrayFromImage(sitk.ReadImage(str(whole_dir / truth_path.name)))
        crop = sitk.GetArrayFromImage(sitk.ReadImage(str(crop_dir / truth_path.name)))
        identical += int(np.array_equal(whole, crop))
        for value in CLASSES:
            a, b = whole == value, crop == value
            both[value][0] += int(np.count_nonzero(a & b))
            both[value][1] += int(np.count_nonzero(a) + np.count_nonzero(b))
        voxel_mm3 = float(np.prod(truth_image.GetSpacing()))
        min_voxels = max(1, int(np.ceil(DETECTION_MIN_OVERLAP_MM3 / voxel_mm3)))
        found = _true_lesions_found(whole, truth, min_voxels)
        components, count = ndimage.label(found)
        kept_total += count
        for index in range(1, count + 1):
            if not (crop[components == index] > 0).any():
                lost.append(truth_path.name)
    return {
        "cases": len(cases),
        "identical_label_maps": identical,
        "dice_between": {CLASSES[v]: (2 * i / s if s else None) for v, (i, s) in both.items()},
        "true_lesions_whole": kept_total,
        "true_lesions_lost_by_crop": lost,
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table(result: dict[str, Any]) -> str:
    whole, crop, agree = result["whole"], result["crop"], result["agreement"]
    rows = [
        f"| figure | whole volume | crop (margin {result['margin_mm']:g} mm, cord from the {result['cord_source']}) |",
        "|---|---|---|",
        f"| wall time, {agree['cases']} cases (s) | {result['seconds_whole']:.1f} | {result['seconds_crop']:.1f} |",
        f"| mean Dice vs truth (%) | {pct(whole['mean_dice'])} | {pct(crop['mean_dice'])} |",
        f"| lesions detected (%) | {pct(whole['detection_tpr'])} | {pct(crop['detection_tpr'])} |",
        f"| share of reported lesions that are false (%) | {pct(whole['detection_fpr'])} | {pct(crop['detection_fpr'])} |",
        f"| type accuracy (%) | {pct(whole['type_accuracy'])} | {pct(crop['type_accuracy'])} |",
    ]
    between = ", ".join(f"{name} {pct(d)}" for name, d in agree["dice_between"].items())
    rows += [
        "",
        f"Crop vs whole volume: identical label maps {agree['identical_label_maps']} of {agree['cases']}; "
        f"pooled Dice between the two per class (%): {between}; lesions of the whole-volume prediction that "
        f"match a true lesion: {agree['true_lesions_whole']}, lost by the crop: {len(agree['true_lesions_lost_by_crop'])}"
        + (f" ({', '.join(agree['true_lesions_lost_by_crop'])})" if agree["true_lesions_lost_by_crop"] else "") + ".",
        f"Speed-up of the crop (same run): {result['seconds_whole'] / result['seconds_crop']:.2f}x.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="nnU-Net raw data set with imagesTr, labelsTr, cordTr")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None, help="model file or name (default: the shipped model)")
    parser.add_argument("--margin", type=float, default=25.0, help="crop margin in mm (default 25)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cord-source", choices=("locator", "mask"), default="locator",
                        help="the crop's cord: batseg's cord locator (default) or the data set's cordTr masks")
    args = parser.parse_args()
    for sub in ("imagesTr", "labelsTr") + (("cordTr",) if args.cord_source == "mask" else ()):
        if not (args.data / sub).is_dir():
            sys.exit(f"{args.data / sub} is missing: give an nnU-Net raw data set with cord masks (cordTr)")
    args.out.mkdir(parents=True, exist_ok=True)
    first = next(iter(sorted((args.data / "imagesTr").glob("*.nii.gz"))))
    batseg("predict", "-i", str(first), "-o", str(args.out / "warm-up"), "--overwrite", "--progress", "quiet",
           *(["--model", args.model] if args.model else []))  # fills the ONNX cache outside the timings
    seconds_whole = predict(args.data, args.out / "whole", args.model, args.threads, None, args.cord_source)
    seconds_crop = predict(args.data, args.out / "crop", args.model, args.threads, args.margin, args.cord_source)
    result = {
        "data": args.data.name, "model": args.model or "shipped default", "margin_mm": args.margin,
        "cord_source": args.cord_source,
        "threads": args.threads, "seconds_whole": seconds_whole, "seconds_crop": seconds_crop,
        "whole": evaluate(args.out / "whole", args.data / "labelsTr", args.out / "eval_whole.json"),
        "crop": evaluate(args.out / "crop", args.data / "labelsTr", args.out / "eval_crop.json"),
        "agreement": agreement(args.out / "whole", args.out / "crop", args.data / "labelsTr"),
    }
    (args.out / "cascade_crop.json").write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
