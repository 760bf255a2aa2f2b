"""Fingerprint, plan and preprocess an imported dataset with nnU-Net's own API.

Steps (all nnU-Net's code): `extract_fingerprint_dataset` (with nnU-Net's dataset integrity
check), `BATsegPlanner.plan_experiment` (see `plans.py`) or, for fine-tuning, the parent
model's plans re-targeted at the new dataset, then `preprocess_dataset` for `3d_fullres` only.

Decision: preprocessing is skipped when the same plans were already used on the same
imported dataset (a record next to the plans stores their hash), so `--resume` and repeated
runs (e.g. other losses, folds, epochs) reuse the preprocessed data.

After preprocessing, tumour-free cases with a cord mask get cord locations for their
oversampled patches (`negative_sampling.py`), before the data is marked current.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from batseg.errors import BATsegError
from batseg.training.plans import CONFIGURATION, BATsegPlanner, plans_identifier, target_spacing_for

RECORD = "batseg_preprocessed.json"


# nnU-Net's integrity check points at lines it printed, which --progress quiet sends to a log
# file and its worker processes print elsewhere: the message says instead what to look for.
_SEE_ABOVE = re.compile(r"\s*Please check text output above[^.]*\.")
_SEE_ABOVE_HINT = (
    " (look for label values other than 0-4, NaN voxel values in an image, or a label not on its image's grid)"
)


def _nnunet_call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an nnU-Net step; its assertion / runtime errors become one-line BATsegErrors."""
    try:
        return function(*args, **kwargs)
    except (AssertionError, RuntimeError, FileNotFoundError, ValueError, KeyError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if _SEE_ABOVE.search(text):
            text = _SEE_ABOVE.sub("", text).rstrip(". ") + _SEE_ABOVE_HINT
        raise BATsegError(f"nnU-Net could not {what}: {text[:400]}") from None


def _plans_hash(plans_file: Path) -> str:
    return hashlib.sha256(plans_file.read_bytes()).hexdigest()


def _is_current(folder: Path, identifier: str) -> bool:
    record = folder / RECORD
    plans_file = folder / f"{identifier}.json"
    if not (record.is_file() and plans_file.is_file()):
        return False
    stored = json.loads(record.read_text(encoding="utf-8"))
    return stored.get(identifier) == _plans_hash(plans_file)


def _mark_current(folder: Path, identifier: str) -> None:
    record = folder / RECORD
    stored = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    stored[identifier] = _plans_hash(folder / f"{identifier}.json")
    record.write_text(json.dumps(stored, indent=2), encoding="utf-8")


def _num_processes() -> int:
    return max(1, int(os.environ.get("nnUNet_def_n_proc", "2")))


def _write_parent_plans(dataset_name: str, identifier: str, parent_plans: dict[str, Any], folder: Path) -> None:
    """The parent model's plans, re-targeted at this dataset (same spacing, network, normalisation)."""
    import shutil

    from nnunetv2.paths import nnUNet_raw

    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text(encoding="utf-8"))
    spacing = target_spacing_for(fingerprint["spacings"], (3.0, 1.0, 1.0))
    coarse_axis = max(range(3), key=lambda a: spacing[a])
    if coarse_axis != parent_plans["transpose_forward"][0]:
        raise BATsegError(
            f"the new cases have their slices along array axis {coarse_axis}, the model's training data along "
            f"axis {parent_plans['transpose_forward'][0]}; export the cases with the model's orientation"
        )
    plans = json.loads(json.dumps(parent_plans))
    plans["dataset_name"] = dataset_name
    plans["plans_name"] = identifier
    configuration = plans["configurations"][CONFIGURATION]
    configuration["data_identifier"] = f"{identifier}_{CONFIGURATION}"
    plans["configurations"] = {CONFIGURATION: configuration}
    shutil.copy(Path(nnUNet_raw.require()) / dataset_name / "dataset.json", folder / "dataset.json")
    (folder / f"{identifier}.json").write_text(json.dumps(plans, indent=2), encoding="utf-8")


def plan_and_preprocess(
    dataset_name: str,
    topology: str,
    parent_plans: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> str:
    """Fingerprint, plan (or adopt `parent_plans`) and preprocess; returns the plans identifier."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        preprocess_dataset,
    )
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw

    from batseg.training.negative_sampling import add_cord_locations

    identifier = plans_identifier(topology) if parent_plans is None else f"{plans_identifier(topology)}_finetune"
    folder = Path(nnUNet_preprocessed.require()) / dataset_name
    if _is_current(folder, identifier) and (folder / f"{identifier}_{CONFIGURATION}").is_dir():
        return identifier
    dataset_id = int(dataset_name[7:10])
    n = _num_processes()
    _nnunet_call(
        "read the training data",
        extract_fingerprint_dataset,
        dataset_id,
        num_processes=n,
        check_dataset_integrity=True,
        clean=True,
        verbose=False,
        show_progress_bar=False,
    )
    if parent_plans is None:
        _nnunet_call("plan the experiment", BATsegPlanner(dataset_name, topology).plan_experiment)
    else:
        _write_parent_plans(dataset_name, identifier, parent_plans, folder)
    _nnunet_call(
        "preprocess the data",
        preprocess_dataset,
        dataset_id,
        identifier,
        configurations=(CONFIGURATION,),
        num_processes=[n],
        show_progress_bar=False,
    )
    raw = Path(nnUNet_raw.require()) / dataset_name
    added = _nnunet_call("map the cord masks", add_cord_locations, raw, folder, identifier, CONFIGURATION)
    if added:
        log(f"{added} tumour-free case(s) centre their oversampled patches on the spinal cord (cordTr masks)")
    _mark_current(folder, identifier)
    return identifier
