#!/usr/bin/env python
"""Realism check of the healthy T2-weighted negative phantoms against the real T2 scans.

The T2 phantoms (`batseg phantom --t2-negative-fraction`) exist to teach the T1 Gd model that
a T2 scan's bright CSF is not tumour, so what matters is the contrast between CSF, cord and the
brightest tissue. This measures the three real sagittal-capable T2 scans of
../shared/data/real-spine-mri (resliced to the clinical sagittal grid, as in
phantom_realism.py) and N healthy T2 phantoms with the same code (`phantom_realism.measure`),
and writes the table into docs/phantoms.md between its t2-realism markers.

    .venv/bin/python scripts/t2_realism.py [--cases 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from phantom_realism import DOC, REAL_DIR, measure, reslice_sagittal, write_table
from batseg.phantoms import generate_case
from batseg.phantoms.spine import REGIONS

REAL_T2 = {
    "sct_t2": ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz"),
    "errsm_11_t2": ("spinalcordtoolbox_2014/errsm_11/t2.nii.gz",
                    "spinalcordtoolbox_2014/errsm_11/t2_manual_segmentation.nii.gz"),
    "errsm_18_t2": ("spinalcordtoolbox_2014/errsm_18/t2.nii.gz",
                    "spinalcordtoolbox_2014/errsm_18/t2_manual_segmentation.nii.gz"),
}
KEYS = ("cord/CSF", "cord/fat", "CSF/fat", "noise sd / cord", "cord SNR")
MARKERS = ("<!-- t2-realism-table:start -->", "<!-- t2-realism-table:end -->")


def real_rows(real_dir: Path) -> dict[str, dict]:
    rows = {}
    for name, (scan, cord) in REAL_T2.items():
        img, mask = reslice_sagittal(sitk.ReadImage(str(real_dir / scan)), sitk.ReadImage(str(real_dir / cord)))
        rows[name] = measure(img, mask, 0.5)
    return rows


def phantom_rows(n: int, seed: int) -> list[dict]:
    rows = []
    for i in range(n):
        case = generate_case(seed + i, region=REGIONS[i % len(REGIONS)], healthy=True, contrast="t2")
        image = sitk.GetArrayFromImage(case.image).astype(np.float64)
        rows.append(measure(image, sitk.GetArrayFromImage(case.cord).astype(bool), case.image.GetSpacing()[0]))
    return rows


def table(real: dict[str, dict], rows: list[dict], n: int, seed: int) -> str:
    names = list(real)
    lines = [f"| statistic | {' | '.join(names)} | T2 phantoms, mean [min, max] over {n} cases (seed {seed}) |",
             "|---" * (len(names) + 2) + "|"]
    for key in KEYS:
        values = np.array([r[key] for r in rows])
        cells = " | ".join(f"{real[name][key]:.3f}" for name in names)
        lines.append(f"| {key} | {cells} | {values.mean():.3f} [{values.min():.3f}, {values.max():.3f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="T2 negative phantoms against the real T2 scans (table).")
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = table(real_rows(args.real_dir), phantom_rows(args.cases, args.seed), args.cases, args.seed)
    print(text)
    write_table(args.doc, text, f"python scripts/t2_realism.py --cases {args.cases} --seed {args.seed}", MARKERS)
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
