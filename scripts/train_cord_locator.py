"""Train BATseg's cord locator and score it on held-out scans.

    python scripts/train_cord_locator.py --train WORK_DIR/real_train/Dataset511_BATsegRealInsertTrain \
        --train WORK_DIR/phantoms/Dataset501_BATsegPhantoms --train WORK_DIR/real_unaltered/distributed \
        --test WORK_DIR/real_test/Dataset512_BATsegRealInsertTest --test WORK_DIR/test/Dataset502_BATsegPhantomsTest \
        --out cord-locator-synthetic-0.1.0.cordloc --report WORK_DIR/locator.json

Every folder is an nnU-Net raw folder with `cordTr/` (scripts/make_real_insertions.py, `batseg
phantom`). Cases whose name starts with a --held-out subject (default: sct_t1w, errsm_24, unf01,
the subjects no tumour-model training split contains) are dropped from the training folders, so
the scores on them are on anatomy the locator never saw. Per test case: Dice of the located cord
with the manual (or phantom) cord mask, and the share of the true cord inside the crop box the
tumour network would use (located cord's bounding box grown by the crop margin): the figure that
matters for the cascade, since cord outside the box is tissue the tumour network never sees; and
whether the mask is trusted (long enough, `LocatedCord.plausible`: an untrusted one is not cropped to).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "BATsegSlicer"))

from batseg.cord_locator.locate import locate_cord  # noqa: E402
from batseg.cord_locator.locator_file import write_locator  # noqa: E402
from batseg.cord_locator.training import folder_cases, load_cases, train  # noqa: E402
from batseg.inference.canal_crop import DEFAULT_MARGIN_MM, roi_box  # noqa: E402

HELD_OUT = ("sct_t1w", "errsm_24", "unf01")


def box_coverage(found: np.ndarray, truth: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    """Share of the true cord inside the located cord's bounding box grown by the crop margin (the
    crop's own `roi_box` on the scan's grid; the real crop also spans the whole head-foot extent, so
    this is the stricter figure)."""
    if not truth.any():
        return 1.0
    box = roi_box(found, spacing_zyx, spacing_zyx, truth.shape, DEFAULT_MARGIN_MM)
    return 0.0 if box is None else float(truth[box.slices].sum() / truth.sum())


def score(folder: Path, locator: Path) -> list[dict]:
    """Dice and crop-box coverage of the located cord on every case of a folder."""
    rows = []
    for name, image_path, cord_path in folder_cases(folder):
        image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(cord_path))) > 0.5
        start = time.monotonic()
        located = locate_cord(image, locator)
        found = located.mask
        seconds = time.monotonic() - start
        denominator = found.sum() + truth.sum()
        dice = float(2 * (found & truth).sum() / denominator) if denominator else 1.0
        spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
        rows.append({"case": name, "folder": folder.name, "dice": dice, "box_coverage": box_coverage(found, truth, spacing),
                     "seconds": seconds, "found_voxels": int(found.sum()), "true_voxels": int(truth.sum()),
                     "length_share": located.length_share, "trusted": located.plausible})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, action="append", default=[])
    parser.add_argument("--test", type=Path, action="append", default=[])
    parser.add_argument("--held-out", nargs="*", default=list(HELD_OUT))
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.train:
        start = time.monotonic()
        cases = load_cases(args.train, exclude=lambda name: name.startswith(tuple(args.held_out)))
        print(f"{len(cases)} training scans as planes in {time.monotonic() - start:.0f} s", flush=True)
        network = train(cases, args.iterations, args.batch, seed=args.seed, log=lambda s: print(s, flush=True))
        details = {"name": "cord-locator-synthetic", "version": "0.1.0",
                   "training": {"folders": [p.name for p in args.train], "scans": len(cases), "held_out": args.held_out,
                                "iterations": args.iterations, "batch": args.batch, "seed": args.seed,
                                "minutes": round((time.monotonic() - start) / 60, 1)},
                   "disclaimer": "Research software, trained on healthy volunteers' scans (with synthetic lesions "
                                 "painted in) and computer-generated phantoms; not for clinical use."}
        write_locator(args.out, network, details, overwrite=True)
    rows = [row for folder in args.test for row in score(folder, args.out)]
    summary = {}
    for folder in sorted({r["folder"] for r in rows}):
        part = [r for r in rows if r["folder"] == folder]
        summary[folder] = {"cases": len(part), "dice_mean": float(np.mean([r["dice"] for r in part])),
                           "box_coverage_min": float(min(r["box_coverage"] for r in part)),
                           "box_coverage_mean": float(np.mean([r["box_coverage"] for r in part])),
                           "no_cord_found": sum(r["found_voxels"] == 0 for r in part),
                           "trusted": sum(r["trusted"] for r in part),
                           "box_coverage_min_trusted": min((r["box_coverage"] for r in part if r["trusted"]), default=None),
                           "seconds_mean": float(np.mean([r["seconds"] for r in part]))}
        print(folder, json.dumps(summary[folder]), flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
