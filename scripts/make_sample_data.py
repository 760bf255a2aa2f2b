#!/usr/bin/env python
"""Regenerate the bundled sample data: one phantom per tumour type (synthetic; not for clinical use).

Writes BATsegSlicer/Resources/SampleData/{NAME}.nii.gz (image, int16), {NAME}_label.nii.gz,
{NAME}.png (128 x 128 thumbnail of the sagittal slice with the most tumour) and sample_data.json
(names, files, SHA-256 digests, tumour types, generator settings). Deterministic: fixed seeds,
a fixed clinical-like grid (384 pixels superior-inferior, 13 slices) and scanner scaling (fat
about 200 counts, cord SNR 14), so running it again
reproduces the same files.

    .venv/bin/python scripts/make_sample_data.py [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from batseg.labels import class_by_value
from batseg.phantoms import generate_case
from batseg.phantoms.samples import MANIFEST_NAME, SAMPLE_DIR, sha256_of

# (case name, tumour type, seed, region): seeds picked for a typical-looking case of each type.
SAMPLES = (
    ("BATsegPhantomMeningioma", 1, 1209, "thoracic"),
    ("BATsegPhantomEpendymoma", 2, 1307, "cervical"),
    ("BATsegPhantomAstrocytoma", 3, 1410, "cervical"),
    ("BATsegPhantomHemangioblastoma", 4, 1500, "thoracic"),
)
MATRIX = 384
SLICES = 13
THUMBNAIL = 128
FAT_COUNTS = 200.0  # values mostly below 256 and a fixed typical SNR keep the noise entropy,
SNR = 14.0  # hence the files, small (8 MB budget for the four cases)


def thumbnail(image: np.ndarray, label: np.ndarray, tumour_type: int) -> Image.Image:
    """Grey sagittal slice with the most tumour, tumour outlined in its class colour, square."""
    k = int(np.argmax((label > 0).sum(axis=(1, 2))))
    sl = image[k].astype(np.float64)
    lo, hi = np.percentile(sl, [1, 99.5])
    grey = np.clip((sl - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    mask = label[k] > 0
    edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1] \
        | mask & ~np.pad(mask, 1)[1:-1, 2:] | mask & ~np.pad(mask, 1)[1:-1, :-2]
    rgb[edge] = class_by_value(tumour_type).color
    n = max(rgb.shape[:2])
    square = np.zeros((n, n, 3))
    r0, c0 = (n - rgb.shape[0]) // 2, (n - rgb.shape[1]) // 2
    square[r0:r0 + rgb.shape[0], c0:c0 + rgb.shape[1]] = rgb
    return Image.fromarray((square * 255).round().astype(np.uint8)).resize((THUMBNAIL, THUMBNAIL), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output folder (default: the bundled one)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, tumour_type, seed, region in SAMPLES:
        case = generate_case(seed, [tumour_type], region, matrix=MATRIX, n_slices=SLICES,
                             acquisition={"fat_counts": FAT_COUNTS, "snr": SNR})
        files = {"image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz", "thumbnail": f"{name}.png"}
        sitk.WriteImage(case.image, str(args.out / files["image"]), True, 9)
        sitk.WriteImage(case.label, str(args.out / files["label"]), True, 9)
        thumbnail(sitk.GetArrayFromImage(case.image), sitk.GetArrayFromImage(case.label),
                  tumour_type).save(args.out / files["thumbnail"], optimize=False)
        entry = {"name": name, "tumour_type": tumour_type, "tumour_name": class_by_value(tumour_type).name,
                 "region": region, "seed": seed, **files}
        entry.update({f"{kind}_sha256": sha256_of(args.out / f) for kind, f in files.items()})
        entry["label_volumes_cm3"] = case.meta["label_volumes_cm3"]
        entry["size"] = list(case.image.GetSize())
        entry["spacing_mm"] = [round(s, 4) for s in case.image.GetSpacing()]
        cases.append(entry)
        print(f"{name}: {entry['size']} {entry['label_volumes_cm3']}")
    manifest = {"description": "BATseg sample phantoms, one per tumour type: synthetic data, not for clinical use.",
                "generator": "scripts/make_sample_data.py", "matrix": MATRIX, "slices": SLICES, "cases": cases}
    (args.out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum((args.out / c[k]).stat().st_size for c in cases for k in ("image", "label", "thumbnail"))
    print(f"total {total / 1e6:.2f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
