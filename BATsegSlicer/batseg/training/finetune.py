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
- The parent's training budget: its iterations per epoch, validation iterations, batch, patch
  and foreground oversampling, unless given (`budget.py`, which also estimates the duration,
  logged before training starts).
- The parent's tuned postprocessing (minimum lesion volume) is inherited, marked as such:
  the closest choice until `batseg tune-postprocess` is rerun on validation cases.
- The boundary loss, field variant, truncation and field normalisation are the parent's (the
  head must keep its meaning); asking for others is refused. A manifest from before the
  normalisation switch has no "normalised": its field was normalised.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from batseg.errors import BATsegError
from batseg.postprocess_settings import POSTPROCESSING_KEY
from batseg.progress import Progress


def bump_version(version: str) -> str:
    """'1.2.0' -> '1.3.0'; a version without numbers gets '.1' appended."""
    parts = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(.*)", version)
    if not parts:
        return f"{version}.1"
    return f"{parts.group(1)}.{int(parts.group(2)) + 1}.0"


def _options_from_parent(manifest: dict[str, Any], options: Any, explicit: set[str]) -> Any:
    """The run's options: the parent's head and training budget (`budget.parent_budget`), with
    fine-tuning's epochs and learning rate, each unless given on the command line (`explicit`)."""
    from batseg.training.budget import FINETUNE_EPOCHS, FINETUNE_LR, parent_budget

    head = manifest["architecture"]["field_head"]
    parent = {
        "loss": head["loss"] if head else "none",
        "variant": head["variant"] if head else options.variant,
        "truncation": _parent_truncation(head) if head else options.truncation,
        "field_normalisation": bool(head.get("normalised", True)) if head else options.field_normalisation,
    }
    for key, value in parent.items():
        if key in explicit and getattr(options, key) != value:
            raise BATsegError(
                f"--{key.replace('_', '-')} {getattr(options, key)} differs from the model's ({value}); "
                "fine-tuning keeps the model's head"
            )
    changes: dict[str, Any] = dict(parent, topology=manifest["architecture"]["topology"])
    changes.update({k: v for k, v in parent_budget(manifest).items() if k not in explicit})
    if "lr" not in explicit:
        changes["lr"] = FINETUNE_LR
    if "epochs" not in explicit:
        changes["epochs"] = FINETUNE_EPOCHS
    return replace(options, **changes)


def _parent_truncation(head: dict[str, Any]) -> float | None:
    """The parent's truncation: null is none (Table 5), a missing key the paper's 1."""
    value = head.get("truncation", 1.0)
    return None if value is None else float(value)


def inherited_postprocessing(parent: dict[str, Any]) -> dict[str, Any] | None:
    """The parent's tuned postprocessing, marked as inherited (None if the parent had none).

    Over several rounds the text names the model it was chosen for and on what (`inherited_from`
    keeps both), not a growing chain of "inherited from"s."""
    chosen = parent.get(POSTPROCESSING_KEY)
    if not chosen:
        return None
    label = f"{parent['name']} {parent['version']}"
    first = chosen.get("inherited_from") or {"model": label, "chosen_on": chosen.get("chosen_on", "")}
    origin = f"inherited from the parent {label}"
    if first["model"] != label:
        origin += f", which inherited it from {first['model']}"
    if first.get("chosen_on"):
        origin += f" (chosen on {first['chosen_on']})"
    return {**chosen, "chosen_on": origin + "; rerun batseg tune-postprocess on validation cases", "inherited_from": first}


def finetune(
    request: Any, parent_path: Path, replay_dir: Path | None, explicit: set[str], progress: Progress,
    replay: bool = True,
) -> list[Path]:
    """Fine-tune the model file `parent_path` on `request.data` (+ replay unless `replay` is
    False, e.g. to continue a model on its own, updated training data); returns the new model file."""
    from batseg.model_file import check_classes, sha256_file, verify
    from batseg.training.datasets import merge_for_finetuning, read_raw_dataset
    from batseg.training.replay import child_lineage, earlier_round_datasets, replay_dataset
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
    replay_dir = Path(replay_dir).expanduser().resolve() if replay_dir else None
    log_budget(manifest, request, progress, len(new.cases), replay, replay_dir)
    original = replay_dataset(manifest, replay_dir, workdir.root, progress, replay)
    earlier = earlier_round_datasets(manifest, new.folder, progress, replay,
                                     exclude=(original.folder,) if original else ())
    replayed = ([("old", original)] if original else []) + [(f"r{i + 1}", d) for i, d in enumerate(earlier)]
    orientation = manifest["input"].get("orientation", {})
    code = orientation.get("code") if isinstance(orientation, dict) else orientation
    merged = merge_for_finetuning(new, replayed, workdir.raw, f"{new.folder.name}Finetune", orientation=code)
    request.options = replace(request.options, case_repeats=merged.repeats)
    if merged.repeats:
        progress.log(f"{merged.new_cases} new case(s) drawn {next(iter(merged.repeats.values()))}x as often as each of "
                     f"the {merged.replayed_cases} replayed case(s) (each preprocessed once)")
    raw = read_raw_dataset(workdir.raw / merged.name)
    raw.dataset_json["description"] = new.description or manifest["training"]["data"].get("description", "")
    request.name = request.name or manifest["name"]
    request.version = request.version or bump_version(str(manifest["version"]))
    prepared = prepare_data(
        raw, workdir, request.options.topology, progress, dataset_name=merged.name,
        parent_plans=manifest["nnunet"]["plans"], sources=[str(new.folder)] + [str(d.folder) for _, d in replayed],
    )
    given = original if original and replay_dir else None
    prepared.lineage = child_lineage(manifest, new.folder, len(new.cases), f"{request.name} {request.version}",
                                     replay_dir, len(given.cases) if given else None,
                                     given.dataset_json if given else None)
    request.extra_manifest["parent"] = {
        "name": manifest["name"],
        "version": manifest["version"],
        "sha256": sha256_file(parent_path),
        "weights_sha256": manifest["weights_sha256"],
        "new_cases": len(new.cases),
        "replay_cases": len(original.cases) if original else 0,
        "earlier_round_cases": sum(len(d.cases) for d in earlier),
        "new_case_repeats": max(merged.repeats.values(), default=1),
    }
    request.extra_manifest["name"] = request.name
    inherited = inherited_postprocessing(manifest)
    if inherited:
        request.extra_manifest[POSTPROCESSING_KEY] = inherited
    return train_prepared(request, prepared, progress, initial_weights=str(parent_path))


def log_budget(
    manifest: dict[str, Any], request: Any, progress: Progress, new_cases: int, replay: bool, replay_dir: Path | None,
) -> None:
    """The run's budget and its expected duration, before anything long starts."""
    from batseg.training.budget import finetune_plan

    options = request.options
    device = request.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    progress.log("fine-tuning: " + finetune_plan(
        manifest, new_cases, options.epochs, device, replay, str(replay_dir) if replay_dir else None,
        iterations_per_epoch=options.iterations_per_epoch,
        val_iterations=options.val_iterations, batch_size=options.batch_size, patch_size=options.patch_size,
        foreground_oversampling=options.foreground_oversampling,
    ))
