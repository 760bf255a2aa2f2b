"""Tumour type of each training case and 5-fold cross-validation stratified by it.

nnU-Net's default split is a random (seeded) KFold. The BATseg paper's folds keep the four
tumour types in proportion (its Table 2), so this module writes nnU-Net's
`splits_final.json` itself, from scikit-learn's StratifiedKFold (nnU-Net already depends on
scikit-learn for its own split).

Decisions:
- A case's type is the tumour class with the most voxels in its label (BATseg's data has one
  tumour type per patient); a case without tumour voxels is type 0 and forms its own stratum.
- If no type has at least 5 cases, stratification is impossible: nnU-Net's own random split
  is used and the caller is told.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from batseg.atomic_files import write_text_atomically
from batseg.errors import BATsegError
from batseg.labels import NUM_CLASSES, TUMOUR_CLASSES, class_by_value

N_FOLDS = 5
SPLIT_SEED = 12345  # nnU-Net's own seed for its default split


def read_label(path: Path) -> np.ndarray:
    """A label volume as an integer array (BATsegError if unreadable)."""
    import SimpleITK as sitk

    try:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise BATsegError(f"cannot read label file {path} ({first})") from None


def tumour_type(label: np.ndarray, where: str) -> int:
    """The dominant tumour class of one label volume (0 if it has none); checks its values."""
    values = np.unique(label)
    if not np.array_equal(values, np.round(values)) or values.min() < 0 or values.max() >= NUM_CLASSES:
        raise BATsegError(
            f"{where} holds label values {values.tolist()[:8]}; BATseg labels are 0 background and 1-4 tumour types"
        )
    counts = np.bincount(label.astype(np.int64).ravel(), minlength=NUM_CLASSES)[1:]
    return int(np.argmax(counts)) + 1 if counts.any() else 0


def case_tumour_types(cases: list[Any]) -> dict[str, int]:
    """{case identifier: dominant tumour class} for `datasets.Case` objects."""
    return {c.identifier: tumour_type(read_label(c.label), str(c.label)) for c in cases}


def type_counts(types: dict[str, int]) -> dict[str, int]:
    """Number of cases per tumour type key ("none" for tumour-free cases)."""
    counts = {c.key: 0 for c in TUMOUR_CLASSES}
    counts["none"] = 0
    for value in types.values():
        counts[class_by_value(value).key if value else "none"] += 1
    return counts


def stratified_splits(types: dict[str, int], seed: int = SPLIT_SEED) -> tuple[list[dict[str, list[str]]], bool]:
    """nnU-Net-style splits [{'train': [...], 'val': [...]}] x 5, and whether they are stratified."""
    from sklearn.model_selection import StratifiedKFold

    keys = sorted(types)
    if len(keys) < N_FOLDS:
        raise BATsegError(
            f"5-fold cross-validation needs at least {N_FOLDS} cases, the data has {len(keys)}; "
            "use --fold all to train on every case"
        )
    strata = np.array([types[k] for k in keys])
    if np.bincount(strata).max() < N_FOLDS:
        from nnunetv2.utilities.crossval_split import generate_crossval_split

        return generate_crossval_split(keys, seed=seed, n_splits=N_FOLDS), False
    folds = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare types (fewer than 5 cases) are spread as well as possible; sklearn warns about it.
        warnings.simplefilter("ignore", UserWarning)
        split_indices = list(folds.split(np.zeros(len(keys)), strata))
    splits = [{"train": [keys[i] for i in tr], "val": [keys[i] for i in va]} for tr, va in split_indices]
    return splits, True


def write_splits(preprocessed_dataset: Path, splits: list[dict[str, list[str]]]) -> Path:
    """Write nnU-Net's splits_final.json (atomically) into the preprocessed dataset folder."""
    return write_text_atomically(preprocessed_dataset / "splits_final.json", json.dumps(splits, indent=2), overwrite=True)
