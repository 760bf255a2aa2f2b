"""`batseg train`: train BATseg (or the nnU-Net baseline) on an nnU-Net raw dataset folder.

The result is packaged straight into a `.batseg` model file. With `--finetune-from MODEL`
the model is fine-tuned on the given cases instead, replaying its original training data.
See `batseg.training.run` for the steps and the meaning of `--fold`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_EPOCHS = 1000
NO_TRUNCATION = "none"
DEFAULT_LR = 1e-2
DEFAULT_ITERATIONS, DEFAULT_VAL_ITERATIONS, DEFAULT_OVERSAMPLING = 250, 50, 0.33
# Options whose default depends on the mode (training vs fine-tuning, where the parent's head
# and training budget are kept): None means "not given". Argument name -> TrainingOptions field.
MODE_DEPENDENT = {
    "loss": "loss", "variant": "variant", "truncation": "truncation", "field_normalisation": "field_normalisation",
    "epochs": "epochs", "lr": "lr",
    "iterations_per_epoch": "iterations_per_epoch", "val_iterations": "val_iterations",
    "foreground_oversampling": "foreground_oversampling", "batch_size": "batch_size", "patch": "patch_size",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on an nnU-Net raw dataset folder and write a .batseg model file",
        description="Train BATseg on nnU-Net v2 (plan, preprocess, train, package). --data is an nnU-Net raw "
        "dataset folder (dataset.json, imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz) with BATseg's labels.",
    )
    parser.add_argument("--data", type=Path, required=True, help="nnU-Net raw dataset folder")
    parser.add_argument("--output", type=Path, required=True, help="model file to write (.batseg)")
    parser.add_argument("--topology", choices=("light", "paper"), default="light",
                        help="network and preprocessing: 'paper' = BATseg's (0.47 mm in-plane), 'light' = CPU-sized")
    parser.add_argument("--loss", default=None,
                        help="boundary loss: cubic (default), l1, l2, bce, cubic_stopgrad, focal_l1, or none (plain nnU-Net)")
    parser.add_argument("--variant", default=None, help="field variant: classwise (default), background, agnostic")
    parser.add_argument("--truncation", type=truncation_argument, default=None,
                        help="field truncation t (default 1, the paper's; 2 and 3 are its Table 6), or none: "
                        "no truncation (Table 5, with --no-field-normalisation)")
    parser.add_argument("--field-normalisation", action=argparse.BooleanOptionalAction, default=None,
                        help="normalise the field to [0, 1] (default, the paper's) or regress signed distances in "
                        "mm on a linear head (--no-field-normalisation, the paper's Table 5 ablation)")
    parser.add_argument("--fold", default="all",
                        help="0-4: one fold of the 5-fold CV stratified by tumour type; all: train on every case "
                        "(default); cv: all five folds, one model file each")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {DEFAULT_EPOCHS}; fine-tuning 50)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None,
                        help=f"training iterations per epoch ({DEFAULT_ITERATIONS}; fine-tuning: the model's)")
    parser.add_argument("--val-iterations", type=int, default=None,
                        help=f"validation iterations per epoch ({DEFAULT_VAL_ITERATIONS}; fine-tuning: the model's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size (default: the plan's, 2; fine-tuning: the model's)")
    parser.add_argument("--patch", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                        help="training patch, slice axis first (default: light 16 160 160, paper 12 384 384; "
                        "fine-tuning: the model's)")
    parser.add_argument("--foreground-oversampling", type=float, default=None,
                        help=f"share of each batch centred on tumour (nnU-Net's {DEFAULT_OVERSAMPLING}; raise it for short "
                        "CPU runs; fine-tuning: the model's)")
    parser.add_argument("--batch-dice", action=argparse.BooleanOptionalAction, default=None,
                        help="soft Dice over the whole batch (--batch-dice) or per sample (--no-batch-dice); "
                             "default: nnU-Net's plan (per sample for sagittal spine volumes)")
    parser.add_argument("--lr", type=float, default=None, help=f"initial learning rate (default {DEFAULT_LR}; fine-tuning 1e-3)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="training device")
    parser.add_argument("--num-gpus", type=int, default=1, help="GPUs for DDP training (nnU-Net's multi-GPU mode)")
    parser.add_argument("--save-every", type=int, default=10, help="epochs between resumable checkpoints (10)")
    parser.add_argument("--seed", type=int, default=12345, help="random seed (weights and main-process sampling)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="work folder for nnU-Net's raw/preprocessed/results (default ~/.cache/batseg/work)")
    parser.add_argument("--resume", action="store_true", help="continue from nnU-Net's latest checkpoint")
    parser.add_argument("--finetune-from", type=Path, default=None, help="fine-tune this .batseg model on --data")
    parser.add_argument("--replay-data", type=Path, default=None,
                        help="the model's original training data to mix in while fine-tuning")
    parser.add_argument("--no-replay", action="store_true",
                        help="fine-tune on --data alone, even where the model's original training data is found")
    parser.add_argument("--name", default=None, help="model name recorded in the model file")
    parser.add_argument("--version", dest="model_version", default=None, help="model version (default 0.1.0, a development version; name a release explicitly)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress output")
    parser.set_defaults(func=run)


def truncation_argument(text: str) -> float | str:
    """`--truncation`: a number, or "none" (kept as the word: None already means "not given")."""
    if text.strip().lower() == NO_TRUNCATION:
        return NO_TRUNCATION
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'none', not {text!r:.40}") from None


def _truncation(given: float | str | None) -> float | None:
    """The TrainingOptions value of `--truncation` (default 1, the paper's)."""
    if given is None:
        return 1.0
    return None if given == NO_TRUNCATION else float(given)


def options_from_args(args: argparse.Namespace):
    """TrainingOptions from the parsed arguments (mode-dependent defaults filled for training)."""
    from batseg.training.options import TrainingOptions

    return TrainingOptions(
        loss=args.loss or "cubic",
        variant=args.variant or "classwise",
        truncation=_truncation(args.truncation),
        field_normalisation=args.field_normalisation if args.field_normalisation is not None else True,
        epochs=args.epochs if args.epochs is not None else DEFAULT_EPOCHS,
        iterations_per_epoch=args.iterations_per_epoch if args.iterations_per_epoch is not None else DEFAULT_ITERATIONS,
        val_iterations=args.val_iterations if args.val_iterations is not None else DEFAULT_VAL_ITERATIONS,
        batch_size=args.batch_size,
        patch_size=list(args.patch) if args.patch else None,
        lr=args.lr if args.lr is not None else DEFAULT_LR,
        foreground_oversampling=(
            args.foreground_oversampling if args.foreground_oversampling is not None else DEFAULT_OVERSAMPLING),
        batch_dice=args.batch_dice,
        seed=args.seed,
        save_every=args.save_every,
        topology=args.topology,
        progress=args.progress,
        command=["batseg"] + sys.argv[1:],
    )


def explicit_options(args: argparse.Namespace) -> set[str]:
    """The TrainingOptions fields given on the command line among those fine-tuning takes from the parent."""
    return {field for arg, field in MODE_DEPENDENT.items() if getattr(args, arg) is not None}


def run(args: argparse.Namespace) -> int:
    from batseg.training.workdir import set_worker_defaults

    set_worker_defaults()  # before nnunetv2 is imported: it reads some of them at import time
    from batseg.atomic_files import remove_stale_parts_beside
    from batseg.progress import Progress
    from batseg.training.run import TrainRequest, train

    progress = Progress(args.progress)
    options = options_from_args(args)
    remove_stale_parts_beside(args.output)  # an earlier run killed while writing its model file
    request = TrainRequest(
        data=args.data, output=args.output, options=options, fold=args.fold, device=args.device,
        num_gpus=args.num_gpus, workdir=args.workdir, resume=args.resume, name=args.name,
        version=args.model_version, overwrite=args.overwrite, extra_manifest={"command": options.command},
    )
    if args.finetune_from is not None:
        from batseg.training.finetune import finetune

        explicit = explicit_options(args)
        if args.no_replay and args.replay_data is not None:
            from batseg.errors import BATsegError

            raise BATsegError("--no-replay and --replay-data contradict each other; give one of them")
        outputs = finetune(request, args.finetune_from, args.replay_data, explicit, progress, not args.no_replay)
    else:
        if args.replay_data is not None or args.no_replay:
            from batseg.errors import BATsegError

            raise BATsegError("--replay-data and --no-replay are used with --finetune-from only")
        outputs = train(request, progress)
    for path in outputs:
        progress.log(f"model file written: {path}")
    progress.result(outputs={"models": [str(p) for p in outputs]})
    return 0
