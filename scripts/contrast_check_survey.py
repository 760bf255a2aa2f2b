"""What `batseg predict` says of the contrast of every scan in some folders, without segmenting them.

Runs the product's own cord step (`batseg.inference.case_cord.find_case_cord`: the shipped cord
locator, then the image-based T2 check, as for a NIfTI file without metadata) on each image and
counts per folder: a trusted cord, an untrusted piece of one, none; the warning that the scan looks
T2-weighted; the warning that its contrast could not be checked. Why a survey of its own: the check
changes only warnings, so it can be compared across commits in minutes, on the same held-out data
as the model's card (T1 phantoms must stay unwarned, T2 scans should be warned).

    python scripts/contrast_check_survey.py --out OUT.json \\
        WORK_DIR/test/Dataset502_BATsegPhantomsTest/imagesTr WORK_DIR/real_unaltered/resliced/imagesTr ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from batseg import acquisition
from batseg.inference import case_cord
from batseg.inference.case_cord import find_case_cord
from batseg.io import Case

# Absent before the "could not be checked" warning existed: the survey also runs on older commits,
# to compare with them.
CONTRAST_UNCHECKED = getattr(case_cord, "CONTRAST_UNCHECKED", None)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def survey_case(path: Path) -> dict[str, Any]:
    """The cord and contrast outcome of one image, as `batseg predict` would report it."""
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    cord = find_case_cord(Case(path.name, path, "file"), image, None, True, acquisition.Acquisition(source="none"))
    contrast = cord.contrast or {}
    state = "trusted" if cord.mask is not None else ("untrusted piece" if contrast else "none")
    return {"case": path.name, "cord": state, "ratio": contrast.get("fluid_to_cord_ratio"),
            "t2_warning": any("T2-weighted" in w for w in cord.warnings if w != CONTRAST_UNCHECKED),
            "unchecked": CONTRAST_UNCHECKED in cord.warnings}


def survey_folder(folder: Path) -> dict[str, Any]:
    """Every image of `folder` and the counts over them."""
    rows = [survey_case(p) for p in sorted(folder.iterdir()) if p.name.endswith(IMAGE_SUFFIXES)]
    counts = {"images": len(rows), "t2_warning": sum(r["t2_warning"] for r in rows),
              "unchecked": sum(r["unchecked"] for r in rows)}
    counts.update({state: sum(r["cord"] == state for r in rows) for state in ("trusted", "untrusted piece", "none")})
    return {"counts": counts, "cases": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="folders of images (e.g. a data set's imagesTr)")
    parser.add_argument("--out", type=Path, required=True, help="JSON with every case's outcome")
    args = parser.parse_args()
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        sys.exit(f"error: not a folder: {', '.join(missing)}; give folders of images")
    results = {str(folder): survey_folder(folder) for folder in args.folders}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(args.out)
    print("| folder | images | trusted cord | untrusted piece | no cord | T2 warning | contrast unchecked |")
    print("|---|---|---|---|---|---|---|")
    for folder, result in results.items():
        c = result["counts"]
        print(f"| {folder} | {c['images']} | {c['trusted']} | {c['untrusted piece']} | {c['none']} | "
              f"{c['t2_warning']} | {c['unchecked']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
