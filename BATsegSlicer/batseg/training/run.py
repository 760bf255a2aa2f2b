"""The driver behind `batseg train`: data -> nnU-Net plan/preprocess -> training -> model file.

Steps: check the raw dataset and read each case's tumour type; link it into the work dir;
fingerprint, plan and preprocess with nnU-Net (`preprocess.py`); write 5-fold splits
stratified by tumour type (`splits.py`); train the fold(s) with `nnUNetTrainerBATseg` on one
device or on several GPUs (`ddp.py`); run nnU-Net's final validation on held-out folds; and
package each trained fold into a `.batseg` model file (`package.py`).

Folds (decision): `--fold 0`..`4` trains that fold of the stratified 5-fold split and records
its held-out validation metrics; `--fold all` is nnU-Net's "all" (every case trains, no
held-out metrics: what a shipped model uses); `--fold cv` trains the five folds one after the
other, writes one model file per fold (`NAME_foldK.batseg`) and a `NAME_cv.json` summary:
nnU-Net's validation Dice per class, and the paper's protocol (`fold_metrics.py`: Dice and
HD95 per type with the 450 mm rule, detection) per fold and as mean +- sd.

Results folder: nnU-Net names it `<trainer>__<plans name>__3d_fullres`; the plans name gets the
run's loss setting appended (e.g. `BATsegPlans_light__cubic-classwise-t1`), so runs that
differ in loss, field variant or truncation keep separate checkpoints in one work dir.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from batseg.errors import BATsegError
from batseg.progress import Progress
from batseg.inference.orientation import MODEL_ORIENTATION
from batseg.training.learning_check import fold_learning_warning
from batseg.training.datasets import RawDataset, import_dataset, orientation_code, read_raw_dataset
from batseg.training.options import TrainingOptions
from batseg.training.plans import CONFIGURATION, check_patch
from batseg.training.splits import case_tumour_types, stratified_splits, type_counts, write_splits
from batseg.training.workdir import WorkDir, activate

FOLDS = ("0", "1", "2", "3", "4", "all", "cv")
RUN_RECORD = "batseg_training.json"


@dataclass
class TrainRequest:
    """Everything `batseg train` was asked to do."""

    data: Path
    output: Path
    options: TrainingOptions
    fold: str = "all"
    device: str = "auto"
    num_gpus: int = 1
    workdir: Path | None = None
    resume: bool = False
    name: str | None = None
    version: str | None = None
    overwrite: bool = False
    extra_manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedData:
    """A dataset ready for nnU-Net training."""

    raw: RawDataset
    dataset_name: str
    plans_identifier: str
    types: dict[str, int]
    description: str
    sources: list[str]
    orientation: str
    lineage: dict[str, Any] = field(default_factory=dict)  # fine-tuning: original data and rounds (replay.py)


def resolve_device(device: str, num_gpus: int = 1) -> Any:
    """torch.device for "auto" / "cpu" / "cuda" (BATsegError if CUDA is asked for and absent)."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise BATsegError(f"--device must be auto, cpu or cuda; got {device!r}")
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise BATsegError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if num_gpus > 1 and not has_cuda:
        raise BATsegError("--num-gpus > 1 needs CUDA GPUs")
    chosen = "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"
    if chosen == "cpu":
        # All cores unless the user limited them the standard way (two runs side by side).
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count() or 1)
    return torch.device(chosen)


@contextlib.contextmanager
def quiet_nnunet(progress: Progress, log_file: Path) -> Iterator[None]:
    """Send nnU-Net's console prints to a log file unless events go to stdout (json mode).

    In json mode stdout is the event channel; nnU-Net's lines there are ignored by the reader
    (they lack the event prefix), so they stay visible in the Slicer module's log.
    """
    if progress.mode == "json":
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
        yield


def prepare_data(
    raw: RawDataset, workdir: WorkDir, topology: str, progress: Progress, dataset_name: str | None = None,
    parent_plans: dict[str, Any] | None = None, sources: list[str] | None = None,
) -> PreparedData:
    """Read tumour types, import (unless `dataset_name` is given), plan and preprocess."""
    from batseg.training.preprocess import plan_and_preprocess

    with progress.stage("check data"):
        types = case_tumour_types(raw.cases)
        # Every case is brought to the model grid's orientation (what inference reorients to),
        # so a model trained on LPS, RAS or mixed exports still sees the axes it will see later.
        orientation = MODEL_ORIENTATION
        differing = sum(1 for case in raw.cases if orientation_code(case.image) != orientation)
        name = dataset_name or import_dataset(raw, workdir.raw, orientation=orientation)
    progress.log(f"{len(raw.cases)} cases: " + ", ".join(f"{k} {v}" for k, v in type_counts(types).items() if v))
    if differing and dataset_name is None:
        progress.log(f"{differing} case(s) stored in another orientation were reoriented to {orientation}")
    with progress.stage("plan and preprocess"), quiet_nnunet(progress, workdir.root / "logs" / "nnunet.log"):
        identifier = plan_and_preprocess(name, topology, parent_plans, log=progress.log)
    return PreparedData(raw, name, identifier, types, raw.description, sources or [str(raw.folder)], orientation)


def write_fold_splits(prepared: PreparedData, progress: Progress) -> None:
    """nnU-Net's splits_final.json, stratified by tumour type."""
    from nnunetv2.paths import nnUNet_preprocessed

    splits, stratified = stratified_splits(prepared.types)
    write_splits(Path(nnUNet_preprocessed.require()) / prepared.dataset_name, splits)
    if not stratified:
        progress.log("no tumour type has 5 cases: folds are nnU-Net's random split, not stratified by type")


def trainer_plans(prepared: PreparedData, options: TrainingOptions, resume: bool) -> tuple[dict, dict]:
    """(plans with this run's options, patch and batch, dataset.json) for the trainer."""
    from nnunetv2.paths import nnUNet_preprocessed

    folder = Path(nnUNet_preprocessed.require()) / prepared.dataset_name
    plans = json.loads((folder / f"{prepared.plans_identifier}.json").read_text(encoding="utf-8"))
    dataset_json = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    configuration = plans["configurations"][CONFIGURATION]
    if options.patch_size:
        configuration["patch_size"] = check_patch(options.patch_size, configuration["architecture"]["arch_kwargs"])
    if options.batch_size:
        configuration["batch_size"] = int(options.batch_size)
    plans["plans_name"] = f"{prepared.plans_identifier}__{options.run_tag}"
    options.into_plans(plans)
    plans["continue_training"] = resume
    return plans, dataset_json


def results_folder(plans: dict[str, Any]) -> Path:
    """nnU-Net's results folder of BATseg's trainer for these plans."""
    from nnunetv2.paths import nnUNet_results

    from batseg.training.trainer import nnUNetTrainerBATseg

    name = f"{nnUNetTrainerBATseg.__name__}__{plans['plans_name']}__{CONFIGURATION}"
    return Path(nnUNet_results.require()) / plans["dataset_name"] / name


def _nnunet_fold(fold: str) -> int | str:
    return fold if fold == "all" else int(fold)


def train_fold(
    plans: dict[str, Any],
    dataset_json: dict[str, Any],
    fold: str,
    device: Any,
    num_gpus: int,
    resume: bool,
    initial_weights: str | None = None,
) -> Path:
    """Train one fold (single device or DDP); returns nnU-Net's fold folder."""
    plans = copy.deepcopy(plans)  # nnU-Net's trainer pops keys from the dict it is given
    fold_dir = results_folder(plans) / f"fold_{fold}"
    if not resume and fold_dir.exists():
        shutil.rmtree(fold_dir)  # a fresh run must not package a stale validation or checkpoint
    final_validation = fold != "all"
    if num_gpus > 1:
        from batseg.training.ddp import train_ddp

        train_ddp(plans, CONFIGURATION, _nnunet_fold(fold), dataset_json, num_gpus, resume, initial_weights,
                  final_validation)
        return fold_dir
    from nnunetv2.run.run_training import maybe_load_checkpoint

    from batseg.training.initial_weights import start_from
    from batseg.training.trainer import enable_cudnn_autotuning, nnUNetTrainerBATseg

    trainer = nnUNetTrainerBATseg(plans, CONFIGURATION, _nnunet_fold(fold), dataset_json, device=device)
    maybe_load_checkpoint(trainer, resume, False, None)
    start_from(trainer, initial_weights)
    enable_cudnn_autotuning(device)  # as nnU-Net's run_training (and ddp._worker)
    trainer.run_training()
    if final_validation:
        with trainer.progress.stage(f"validate fold {fold}"):
            trainer.perform_actual_validation(False)
    return fold_dir


def write_run_record(
    folder: Path, prepared: PreparedData, options: TrainingOptions, extra: dict[str, Any],
    device: dict[str, Any] | None = None,
) -> None:
    """What `batseg package` needs beyond nnU-Net's files: data summary, command, options, device;
    and for a fine-tuning its parent and inherited postprocessing (`extra`)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "data": {
            "sources": prepared.sources,
            "description": prepared.description,
            "dataset_name": prepared.dataset_name,
            "num_cases": len(prepared.types),
            "cases_per_type": type_counts(prepared.types),
            "orientation": prepared.orientation,
            **prepared.lineage,
        },
        "options": options.to_dict(),
        **({"device": device} if device else {}),
        **extra,
    }
    (folder / RUN_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")


def device_description(device: Any, num_gpus: int = 1) -> dict[str, Any]:
    """The training device as the manifest records it (what a run's timing was measured on)."""
    import torch

    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "gpus": int(num_gpus)}
    return {"type": "cpu", "threads": torch.get_num_threads()}


def fold_output(output: Path, fold: str, folds: list[str]) -> Path:
    """The model file of one fold: `output` itself, or NAME_foldK.batseg for --fold cv."""
    return output if len(folds) == 1 else output.with_name(f"{output.stem}_fold{fold}{output.suffix}")


def train_prepared(
    request: TrainRequest, prepared: PreparedData, progress: Progress, initial_weights: str | None = None
) -> list[Path]:
    """Train the requested fold(s) of prepared data and package each into a model file."""
    from batseg.training.package import package_results, write_cv_summary

    options = request.options
    folds = ["0", "1", "2", "3", "4"] if request.fold == "cv" else [request.fold]
    for fold in folds:
        check_output(fold_output(request.output, fold, folds), request.overwrite)  # fail before training, not after
    if folds != ["all"]:
        write_fold_splits(prepared, progress)
    device = resolve_device(request.device, request.num_gpus)
    plans, dataset_json = trainer_plans(prepared, options, request.resume)
    write_run_record(results_folder(plans), prepared, options, request.extra_manifest,
                     device_description(device, request.num_gpus))
    outputs = []
    for fold in folds:
        progress.log(f"training fold {fold} on {device.type} ({options.epochs} epochs x {options.iterations_per_epoch} iterations)")
        with progress.stage(f"train fold {fold}"), quiet_nnunet(progress, request_log(prepared)):
            fold_dir = train_fold(plans, dataset_json, fold, device, request.num_gpus, request.resume, initial_weights)
        warning = fold_learning_warning(fold_dir)
        if warning:
            progress.log(f"warning: fold {fold}: {warning}")
        if fold != "all":
            score_fold(fold_dir, prepared, dataset_json, progress)
        with progress.stage("package"):
            outputs.append(
                package_results(
                    fold_dir.parent, fold, fold_output(request.output, fold, folds), name=request.name,
                    version=request.version, overwrite=request.overwrite,
                )
            )
    if request.fold == "cv":
        summary = write_cv_summary(outputs, request.output.with_name(f"{request.output.stem}_cv.json"))
        progress.log(f"cross-validation (nnU-Net's validation Dice): mean foreground Dice {summary['mean_foreground_dice']}")
        if summary.get("paper_protocol"):
            from batseg.training.fold_metrics import format_cv_table

            progress.log(f"cross-validation (the paper's protocol, mean +- sd over {len(folds)} folds): "
                         + format_cv_table(summary["paper_protocol"]))
    return outputs


def score_fold(fold_dir: Path, prepared: PreparedData, dataset_json: dict[str, Any], progress: Progress) -> None:
    """The paper's figures on the fold's held-out cases (`fold_metrics.py`), beside nnU-Net's."""
    from nnunetv2.paths import nnUNet_preprocessed

    from batseg.training.fold_metrics import evaluate_fold

    gt_folder = Path(nnUNet_preprocessed.require()) / prepared.dataset_name / "gt_segmentations"
    with progress.stage(f"score fold {fold_dir.name[5:]}"):
        summary = evaluate_fold(fold_dir, gt_folder, dataset_json["file_ending"])
    if summary:
        dice, hd95 = summary["mean_dice"], summary["mean_hd95"]
        progress.log(f"{fold_dir.name}: {summary['n_cases']} held-out case(s), mean Dice "
                     f"{'n/a' if dice is None else f'{100 * dice:.1f} %'}, HD95 {'n/a' if hd95 is None else f'{hd95:.1f} mm'}")


def request_log(prepared: PreparedData) -> Path:
    from nnunetv2.paths import nnUNet_results

    return Path(nnUNet_results.require()) / prepared.dataset_name / "nnunet_console.log"


def check_output(output: Path, overwrite: bool) -> Path:
    """The model file path; BATsegError if it exists (without --overwrite) or has no .batseg suffix."""
    from batseg.atomic_files import check_writable_folder
    from batseg.model_file import MODEL_SUFFIX

    output = Path(output).expanduser().resolve()
    if output.suffix != MODEL_SUFFIX:
        raise BATsegError(f"--output must end in {MODEL_SUFFIX}; got {output.name}")
    if output.exists() and not overwrite:
        raise BATsegError(f"{output} already exists; choose another --output or pass --overwrite")
    check_writable_folder(output.parent)  # before hours of training, not at packaging
    return output


def train(request: TrainRequest, progress: Progress) -> list[Path]:
    """`batseg train` without --finetune-from: returns the model file(s) written."""
    if request.fold not in FOLDS:
        raise BATsegError(f"--fold must be one of {', '.join(FOLDS)}; got {request.fold!r}")
    request.output = check_output(request.output, request.overwrite)
    options = request.options
    if options.patch_size:
        from batseg.network import topology_kwargs

        check_patch(options.patch_size, topology_kwargs(options.topology))
    raw = read_raw_dataset(request.data)
    workdir = activate(request.workdir)
    request.extra_manifest.setdefault("command", options.command or sys.argv)
    prepared = prepare_data(raw, workdir, options.topology, progress)
    return train_prepared(request, prepared, progress)
