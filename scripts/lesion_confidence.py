"""How sure is a model of its true and of its false lesions? The figures behind the probability minimum.

Predicts every case of a labelled nnU-Net dataset along `batseg predict`'s default path (the cascade
crop around the located cord, no postprocessing), fills holes and drops lesions under the model's
minimum volume (or --min-volume), and lists each remaining lesion with its volume, its peak and its
mean tumour probability (one minus the background probability, `batseg.lesions`), and whether it
is true (at least 6 mm3 of it on a true lesion, the detection rule of `batseg.metrics`). Prints how
many true and false lesions each minimum of the peak and of the mean keeps.

Use it on validation cases: the minimum a model ships with is chosen there by
`batseg tune-postprocess`, never on the cases its figures are reported on.

    python scripts/lesion_confidence.py --model MODEL.batseg --data WORK_DIR/val/Dataset514_BATsegMixVal \
        --out WORK_DIR/lesion_confidence.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "BATsegSlicer"))

from batseg.commands.cord_arguments import DEFAULT_CROP_MARGIN_MM, CordSettings  # noqa: E402
from batseg.commands.tune_postprocess import _raw_prediction  # noqa: E402
from batseg.evaluation import read_label_file  # noqa: E402
from batseg.inference.predictor import Predictor  # noqa: E402
from batseg.io import read_image  # noqa: E402
from batseg.lesions import label_lesions, tumour_probabilities, voxel_volume_mm3  # noqa: E402
from batseg.metrics import DETECTION_MIN_OVERLAP_MM3  # noqa: E402
from batseg.postprocess import postprocess  # noqa: E402
from batseg.postprocess_settings import recommended_min_volume  # noqa: E402
from batseg.postprocess_tuning import validation_pairs  # noqa: E402
from batseg.progress import Progress  # noqa: E402

MINIMUMS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def case_lesions(labels: np.ndarray, probabilities: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...],
                 min_volume_mm3: float) -> list[dict]:
    """Each lesion left after hole filling and the volume minimum, with its probabilities and truth."""
    final = postprocess(labels, spacing, fill_holes=True, min_volume_mm3=min_volume_mm3)
    components, count = label_lesions(final > 0)
    tumour = tumour_probabilities(probabilities, labels.shape).sum(axis=0)  # 4 or 5 channels (batseg.lesions)
    voxel_mm3 = voxel_volume_mm3(spacing)
    rows = []
    for index in range(1, count + 1):
        inside = components == index
        rows.append({
            "volume_mm3": float(inside.sum() * voxel_mm3),
            "peak": float(tumour[inside].max()),
            "mean": float(tumour[inside].mean()),
            "true": bool(np.count_nonzero(truth[inside]) * voxel_mm3 >= DETECTION_MIN_OVERLAP_MM3),
        })
    return rows


def kept_table(lesions: list[dict]) -> str:
    """True and false lesions kept at each minimum of the peak and of the mean probability."""
    lines = ["| minimum | peak: true kept | peak: false kept | mean: true kept | mean: false kept |", "|---|---|---|---|---|"]
    for least in MINIMUMS:
        counts = []
        for key in ("peak", "mean"):
            kept = [lesion for lesion in lesions if lesion[key] >= least]
            true = sum(lesion["true"] for lesion in kept)
            counts += [str(true), str(len(kept) - true)]
        lines.append(f"| {least:g} | " + " | ".join(counts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model file (.batseg)")
    parser.add_argument("--data", required=True, help="labelled nnU-Net dataset folder (imagesTr, labelsTr)")
    parser.add_argument("--out", required=True, help="JSON file of every lesion")
    parser.add_argument("--min-volume", type=float, default=None, help="mm3 (default: the model's)")
    args = parser.parse_args(argv)
    predictor = Predictor(Path(args.model), device="cpu", progress=Progress("quiet"))
    min_volume = recommended_min_volume(predictor.manifest) if args.min_volume is None else args.min_volume
    cord = CordSettings(cord_masks=None, crop_margin_mm=DEFAULT_CROP_MARGIN_MM, cord_locator=True)  # predict's defaults
    lesions = []
    for case, label_path in validation_pairs(args.data):
        truth_image, truth = read_label_file(label_path)
        labels, probabilities, _ = _raw_prediction(predictor, case, read_image(case), cord)
        spacing = tuple(reversed(truth_image.GetSpacing()))
        rows = case_lesions(sitk.GetArrayFromImage(labels), probabilities, truth, spacing, min_volume)
        lesions += [{"case": case.name, **row} for row in rows]
    Path(args.out).write_text(json.dumps({"model": predictor.manifest.get("version"), "min_volume_mm3": min_volume,
                                          "lesions": lesions}, indent=1) + "\n")
    print(f"{len(lesions)} lesions of at least {min_volume:g} mm3 on {args.data}, "
          f"{sum(lesion['true'] for lesion in lesions)} true")
    print(kept_table(lesions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
