"""`write_dataset`: a folder of phantoms in nnU-Net v2's raw layout.

Layout: OUT_DIR/DatasetNNN_Name/{imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz,
cordTr/CASE.nii.gz, phantoms.json, dataset.json}. `cordTr` holds the spinal cord masks (for a
cord-finding first stage, see METHOD.md section 2); nnU-Net ignores it.

Decisions:
- Case i's seed is derived from (seed, i) with numpy's SeedSequence, so any subset of cases can
  be regenerated alone (`generate_case(meta["seed"], meta["plan_types"] or None, ...)`, see
  phantoms.json); the case plan (tumour types, healthy or not) is drawn from (seed, N, healthy
  fraction) and stored per case.
- Tumour types are balanced: round(N * healthy_fraction) healthy cases, the others cycle
  through the four classes (so 5-fold splits can be stratified by type); each case is a
  second lesion of the same type with the probability given in case.py. The order is shuffled.
- round(N * t2_fraction) further cases are healthy T2-weighted "wrong contrast" negatives
  (case.py), taken from the tumour cases' share. With no T2 fraction the plan is the one
  datasets had before that option existed (same seeds, types and order).
- Crash safety: every file is written under a temporary name in its own folder and renamed;
  dataset.json, which is what makes nnU-Net see the dataset, is written last. A non-empty
  dataset folder is never written into unless `overwrite` is set; then dataset.json is removed
  first and the case folders are emptied.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from batseg import __version__
from batseg.atomic_files import write_atomically, write_text_atomically
from batseg.errors import BATsegError
from batseg.io import image_suffix, image_writer
from batseg.labels import NNUNET_LABELS
from batseg.phantoms.case import SECOND_LESION_PROBABILITY, generate_case
from batseg.progress import Progress

DEFAULT_DATASET_NAME = "Dataset501_BATsegPhantoms"
FILE_ENDING = ".nii.gz"
CASE_FOLDERS = ("imagesTr", "labelsTr", "cordTr")
DESCRIPTION = ("Synthetic spinal cord tumour phantoms (sagittal T1 Gd-like MRI) made by `batseg phantom`: "
               "synthetic data, not for clinical use.")
_PLAN_STREAM = 2 ** 32 - 1  # SeedSequence key of the dataset plan (case seeds use the case index)


@dataclass(frozen=True)
class CasePlan:
    """What one case of a dataset will be."""

    case_id: str
    index: int
    seed: int
    tumour_types: list[int]  # empty for a healthy case
    contrast: str = "t1gd"  # "t2": a healthy wrong-contrast negative


def case_seed(seed: int, index: int) -> int:
    """The seed of case `index` of a dataset made with `seed` (independent of the dataset size)."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


_T2_NEGATIVE = -1  # plan kind of a healthy T2 case (0 healthy T1 Gd, 1-4 tumour types)


def plan_dataset(num_cases: int, seed: int, healthy_fraction: float, t2_fraction: float = 0.0) -> list[CasePlan]:
    """Balanced, shuffled case plan."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PLAN_STREAM]))
    n_healthy = int(round(num_cases * healthy_fraction))
    n_t2 = min(int(round(num_cases * t2_fraction)), num_cases - n_healthy)  # both rounded up must still fit
    kinds = [0] * n_healthy + [_T2_NEGATIVE] * n_t2 + [(i % 4) + 1 for i in range(num_cases - n_healthy - n_t2)]
    rng.shuffle(kinds)
    plans = []
    for index, kind in enumerate(kinds):
        types = [] if kind < 1 else [kind] * (2 if rng.random() < SECOND_LESION_PROBABILITY[kind] else 1)
        contrast = "t2" if kind == _T2_NEGATIVE else "t1gd"
        plans.append(CasePlan(f"phantom_{index:04d}", index, case_seed(seed, index), types, contrast))
    return plans


def _atomic_write_image(image: sitk.Image, path: Path) -> None:
    write_atomically(path, image_writer(image), overwrite=True, suffix=image_suffix(path))


def _atomic_write_json(data: Any, path: Path) -> None:
    write_text_atomically(path, json.dumps(data, indent=2) + "\n", overwrite=True)


def _make_case(folder: str, plan: CasePlan, options: dict) -> dict:
    """Generate and write one case (runs in a worker process)."""
    case = generate_case(plan.seed, plan.tumour_types or None, healthy=not plan.tumour_types,
                         contrast=plan.contrast, **options)
    root = Path(folder)
    _atomic_write_image(case.image, root / "imagesTr" / f"{plan.case_id}_0000{FILE_ENDING}")
    _atomic_write_image(case.label, root / "labelsTr" / f"{plan.case_id}{FILE_ENDING}")
    _atomic_write_image(case.cord, root / "cordTr" / f"{plan.case_id}{FILE_ENDING}")
    meta = dict(case.meta)
    meta.update({"case_id": plan.case_id, "index": plan.index, "plan_types": plan.tumour_types})
    return meta


# Forced acquisition sizes: below these there is no spine to see; above, a phantom stops being
# a clinical sagittal series (and a user's typo would fill the memory).
MATRIX_RANGE = (32, 1024)
SLICES_RANGE = (3, 60)


def _validate(num_cases: int, healthy_fraction: float, t2_fraction: float, dataset_name: str, workers: int,
              seed: int, matrix: int | None, n_slices: int | None) -> None:
    """One-line errors for every bad argument, before the output folder is touched."""
    if seed < 0:
        raise BATsegError(f"the seed must be a non-negative integer (got {seed})")
    if matrix is not None and not MATRIX_RANGE[0] <= matrix <= MATRIX_RANGE[1]:
        raise BATsegError(f"--matrix must be between {MATRIX_RANGE[0]} and {MATRIX_RANGE[1]} (got {matrix})")
    if n_slices is not None and not SLICES_RANGE[0] <= n_slices <= SLICES_RANGE[1]:
        raise BATsegError(f"--slices must be between {SLICES_RANGE[0]} and {SLICES_RANGE[1]} (got {n_slices})")
    if num_cases < 1:
        raise BATsegError(f"the number of cases must be at least 1 (got {num_cases})")
    if not 0.0 <= healthy_fraction <= 1.0:
        raise BATsegError(f"the healthy fraction must be between 0 and 1 (got {healthy_fraction})")
    if not 0.0 <= t2_fraction <= 1.0 - healthy_fraction:
        raise BATsegError(f"the T2 negative fraction must be between 0 and 1 minus the healthy fraction "
                          f"(got {t2_fraction} with a healthy fraction of {healthy_fraction})")
    if not re.fullmatch(r"Dataset\d{3}_[A-Za-z0-9_\-]+", dataset_name):
        raise BATsegError(f"dataset name {dataset_name!r} is not nnU-Net style: use DatasetNNN_Name, "
                          f"e.g. {DEFAULT_DATASET_NAME}")
    if workers < 1:
        raise BATsegError(f"the number of workers must be at least 1 (got {workers})")


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise BATsegError(f"{folder} exists and is not a folder: choose another output folder")
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise BATsegError(f"{folder} already exists and is not empty: choose another output folder "
                              "or pass --overwrite to replace it")
        (folder / "dataset.json").unlink(missing_ok=True)  # first: nnU-Net must not see a stale claim
        (folder / "phantoms.json").unlink(missing_ok=True)
        for name in CASE_FOLDERS:
            shutil.rmtree(folder / name, ignore_errors=True)
    for name in CASE_FOLDERS:
        (folder / name).mkdir(parents=True, exist_ok=True)


def _dataset_json(num_cases: int, seed: int, healthy_fraction: float, t2_fraction: float) -> dict:
    return {
        "channel_names": {"0": "T1Gd"},
        "labels": dict(NNUNET_LABELS),
        "numTraining": num_cases,
        "file_ending": FILE_ENDING,
        "name": "BATseg phantoms",
        "description": DESCRIPTION,
        "reference": "batseg.phantoms (BATsegSlicer); see docs/phantoms.md",
        "licence": "synthetic data generated by BATsegSlicer; not for clinical use",
        "release": __version__,
        "batseg": {"generator": "batseg.phantoms", "version": __version__, "seed": int(seed),
                   "healthy_fraction": healthy_fraction, "t2_negative_fraction": t2_fraction,
                   "cord_masks": "cordTr"},
    }


def write_dataset(out_dir: str | os.PathLike, num_cases: int, seed: int,
                  dataset_name: str = DEFAULT_DATASET_NAME, healthy_fraction: float = 0.1, *,
                  workers: int = 1, overwrite: bool = False, progress: Progress | None = None,
                  matrix: int | None = None, n_slices: int | None = None, t2_fraction: float = 0.0) -> Path:
    """Write `num_cases` phantoms as an nnU-Net v2 raw dataset; returns the dataset folder.
    `t2_fraction` of them are healthy T2-weighted negatives (see plan_dataset)."""
    _validate(num_cases, healthy_fraction, t2_fraction, dataset_name, workers, seed, matrix, n_slices)
    progress = progress or Progress("quiet")
    folder = Path(out_dir) / dataset_name
    _prepare_folder(folder, overwrite)
    plans = plan_dataset(num_cases, seed, healthy_fraction, t2_fraction)
    options = {"matrix": matrix, "n_slices": n_slices}
    metas: dict[str, dict] = {}
    start = time.perf_counter()
    with progress.stage("phantoms"):
        progress.update("phantoms", 0, num_cases)
        if workers == 1:
            for plan in plans:
                metas[plan.case_id] = _make_case(str(folder), plan, options)
                progress.update("phantoms", len(metas), num_cases)
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(_make_case, str(folder), plan, options) for plan in plans]
                for future in as_completed(futures):
                    meta = future.result()
                    metas[meta["case_id"]] = meta
                    progress.update("phantoms", len(metas), num_cases)
    seconds = time.perf_counter() - start
    cases = {plan.case_id: metas[plan.case_id] for plan in plans}
    _atomic_write_json({"generator": "batseg.phantoms", "version": __version__, "seed": int(seed),
                        "num_cases": num_cases, "healthy_fraction": healthy_fraction,
                        "t2_negative_fraction": t2_fraction,
                        "plans": [asdict(p) for p in plans], "cases": cases,
                        "seconds": round(seconds, 2), "note": DESCRIPTION}, folder / "phantoms.json")
    _atomic_write_json(_dataset_json(num_cases, seed, healthy_fraction, t2_fraction), folder / "dataset.json")
    return folder
