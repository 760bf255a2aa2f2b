"""Fine-tuning a `.batseg` model on new cases without forgetting the old ones.

Input: a model file and a folder of new cases in nnU-Net's raw layout (what the Slicer
module exports after a user corrects segmentations: imagesTr/CASE_0000.nii.gz,
labelsTr/CASE.nii.gz, dataset.json). Output: a new model file whose manifest names its
parent (name, version, sha256 of the parent file and of its weights) and whose version is
the parent's with the minor number bumped.

Decisions (continual learning without catastrophic forgetting, Lemay et al.'s open point):
- Replay: the original training cases are mixed in (`datasets.merge_for_finetuning`), the
  new cases repeated to about 30% of the merged set. Where the original data is found
  (`--replay-data`, the manifest's folders, or phantoms regenerated from their seed) is
  `replay.py`'s concern. Without it the run goes on new cases only, with a warning that the
  model may forget what it knew.
  `--no-replay` asks for that on purpose (e.g. to continue a model on its own training data
  after that data was regenerated), without looking for the original data.
- The parent's plans are reused unchanged (spacing, normalisation, network, patch), and its
  weights initialise every layer, field head included (`initial_weights.start_from`, strict).
- Lower learning rate: 1e-3 (a tenth of nnU-Net's 1e-2) and 50 epochs by default, still with
  nnU-Net's poly schedule and SGD; fold "all" (every merged case trains).
- The parent's tuned postprocessing (minimum lesion volume) is inherited, marked as such:
  the closest choice until `batseg tune-postprocess` is rerun on validation cases.
- The boundary loss, field variant and truncation are the parent's (the head must keep its
  meaning); asking for others is refused.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from batseg.errors import BATsegError
from batseg.postprocess_settings import POSTPROCESSING_KEY
from batseg.progress import Progress

FINETUNE_LR = 1e-3
FINETUNE_EPOCHS = 50


def bump_version(version: str) -> str:
    """'1.2.0' -> '1.3.0'; a version without numbers gets '.1' appended."""
    parts = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(.*)", version)
    if not parts:
        return f"{version}.1"
    return f"{parts.group(1)}.{int(parts.group(2)) + 1}.0"


def _options_from_parent(manifest: dict[str, Any], options: Any, explicit: set[str]) -> Any:
    head = manifest["architecture"]["field_head"]
    parent = {
        "loss": head["loss"] if head else "none",
        "variant": head["variant"] if head else options.variant,
        "truncation": float(head["truncation"]) if head else options.truncation,
    }
    for key, value in parent.items():
        if key in explicit and getattr(options, key) != value:
            raise BATsegError(
                f"--{key} {getattr(options, key)} differs from the model's ({value}); fine-tuning keeps the model's head"
            )
    changes: dict[str, Any] = dict(parent, topology=manifest["architecture"]["topology"])
    if "lr" not in explicit:
        changes["lr"] = FINETUNE_LR
    if "epochs" not in explicit:
        changes["epochs"] = FINETUNE_EPOCHS
    return replace(options, **changes)


def inherited_postprocessing(parent: dict[str, Any]) -> dict[str, Any] | None:
    """The parent's tuned postprocessing, marked as inherited (None if the parent had none)."""
    chosen = parent.get(POSTPROCESSING_KEY)
    if not chosen:
        return None
    origin = f"inherited from the parent {parent['name']} {parent['version']}"
    if chosen.get("chosen_on"):
        origin += f" (chosen on {chosen['chosen_on']})"
    return {**chosen, "chosen_on": origin + "; rerun batseg tune-postprocess on validation cases"}


def finetune(
    request: Any, parent_path: Path, replay_dir: Path | None, explicit: set[str], progress: Progress,
    replay: bool = True,
) -> list[Path]:
    """Fine-tune the model file `parent_path` on `request.data` (+ replay unless `replay` is
    False, e.g. to continue a model on its own, updated training data); returns the new model file."""
    from batseg.model_file import check_classes, sha256_file, verify
    from batseg.training.datasets import merge_for_finetuning, read_raw_dataset
    from batseg.training.replay import replay_dataset
    from batseg.training.run import check_output, prepare_data, train_prepared
    from batseg.training.workdir import activate

    request.output = check_output(request.output, request.overwrite)
    if request.fold != "all":
        raise BATsegError("fine-tuning trains on every case (--fold all); cross-validate the parent instead")
    parent_path = Path(parent_path).expanduser().resolve()
    manifest = verify(parent_path)
    check_classes(manifest)
    if "nnunet" not in manifest:
        raise BATsegError(f"{parent_path.name} lacks the nnU-Net plans needed to fine-tune it; package it with batseg 0.1+")
    request.options = _options_from_parent(manifest, request.options, explicit)
    workdir = activate(request.workdir)
    new = read_raw_dataset(request.data)
    replayed = replay_dataset(manifest, Path(replay_dir) if replay_dir else None, workdir.root, progress, replay)
    orientation = manifest["input"].get("orientation", {})
    code = orientation.get("code") if isinstance(orientation, dict) else orientation
    merged_name = merge_for_finetuning(new, replayed, workdir.raw, f"{new.folder.name}Finetune", orientation=code)
    merged = read_raw_dataset(workdir.raw / merged_name)
    merged.dataset_json["description"] = new.description or manifest["training"]["data"].get("description", "")
    sources = [str(new.folder)] + ([str(replayed.folder)] if replayed else [])
    prepared = prepare_data(
        merged, workdir, request.options.topology, progress, dataset_name=merged_name,
        parent_plans=manifest["nnunet"]["plans"], sources=sources,
    )
    request.name = request.name or manifest["name"]
    request.version = request.version or bump_version(str(manifest["version"]))
    request.extra_manifest["parent"] = {
        "name": manifest["name"],
        "version": manifest["version"],
        "sha256": sha256_file(parent_path),
        "weights_sha256": manifest["weights_sha256"],
        "new_cases": len(new.cases),
        "replay_cases": len(replayed.cases) if replayed else 0,
    }
    request.extra_manifest["name"] = request.name
    inherited = inherited_postprocessing(manifest)
    if inherited:
        request.extra_manifest[POSTPROCESSING_KEY] = inherited
    return train_prepared(request, prepared, progress, initial_weights=str(parent_path))
