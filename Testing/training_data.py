"""Tiny synthetic nnU-Net raw datasets for the training tests (generated, never downloaded).

Each case is a noisy volume with one box- or sphere-shaped bright "tumour" of class 1-4
(cycling through the classes, so 5-fold splits can be stratified), stored like the Slicer
module's export: dataset.json, imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz. Slices lie
along array axis 0 with 3.3 mm spacing (sagittal-like: coarse axis first).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_ZYX = (3.3, 0.94, 0.94)
LABELS = {"background": 0, "meningioma": 1, "ependymoma": 2, "astrocytoma": 3, "hemangioblastoma": 4}


def _case(rng: np.random.Generator, shape: tuple[int, int, int], tumour_class: int) -> tuple[np.ndarray, np.ndarray]:
    z, y, x = np.indices(shape)
    centre = [rng.integers(s // 4, 3 * s // 4 + 1) for s in shape]
    label = np.zeros(shape, dtype=np.uint8)
    if tumour_class % 2:
        radius = rng.uniform(6.0, 10.0)  # mm
        dist = np.sqrt(((z - centre[0]) * SPACING_ZYX[0]) ** 2 + ((y - centre[1]) * SPACING_ZYX[1]) ** 2
                       + ((x - centre[2]) * SPACING_ZYX[2]) ** 2)
        label[dist <= radius] = tumour_class
    else:
        half = [2, int(rng.integers(4, 9)), int(rng.integers(4, 9))]
        box = tuple(slice(max(c - h, 0), c + h + 1) for c, h in zip(centre, half))
        label[box] = tumour_class
    image = rng.normal(100.0, 10.0, shape) + 60.0 * (label > 0) + 10.0 * tumour_class * (label > 0)
    return image.astype(np.float32), label


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(SPACING_ZYX)))
    sitk.WriteImage(image, str(path))


def make_dataset(folder: Path, n_cases: int = 6, shape: tuple[int, int, int] = (8, 64, 64), seed: int = 0,
                 prefix: str = "case", description: str = "synthetic phantoms for tests") -> Path:
    """Write an nnU-Net raw dataset of `n_cases` tiny cases into `folder`; returns it."""
    rng = np.random.default_rng(seed)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(exist_ok=True)
    for i in range(n_cases):
        image, label = _case(rng, shape, 1 + i % 4)
        _write(image, folder / "imagesTr" / f"{prefix}{i:03d}_0000.nii.gz")
        _write(label, folder / "labelsTr" / f"{prefix}{i:03d}.nii.gz")
    dataset_json = {
        "channel_names": {"0": "T1Gd"},
        "labels": LABELS,
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
        "description": description,
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2), encoding="utf-8")
    return folder
