"""`batseg package`: turn an nnU-Net results folder into a `.batseg` model file.

Accepts the trainer folder of `batseg train` or of plain `nnUNetv2_train` (default
PlainConvUNet plans; the model then has no field head). See `batseg.training.package`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "package",
        help="package an nnU-Net results folder into a .batseg model file",
        description="Package nnU-Net results (the folder <trainer>__<plans>__3d_fullres) into a .batseg model file.",
    )
    parser.add_argument("--results", type=Path, required=True,
                        help="nnU-Net results trainer folder (<trainer>__<plans>__3d_fullres), or one of its fold_K folders")
    parser.add_argument("--output", type=Path, required=True, help="model file to write (.batseg)")
    parser.add_argument("--fold", default=None, help="fold to package (default: the only fold_* present)")
    parser.add_argument("--checkpoint", choices=("final", "best", "latest"), default=None,
                        help="checkpoint to package (default: final, else best, else latest)")
    parser.add_argument("--name", default=None, help="model name recorded in the model file")
    parser.add_argument("--version", dest="model_version", default=None, help="model version (default 0.1.0, a development version; name a release explicitly)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress output")
    parser.set_defaults(func=run)


def only_fold(results: Path) -> str:
    """The fold name when the results folder holds exactly one fold_* folder."""
    from batseg.errors import BATsegError

    folds = sorted(p.name[5:] for p in results.glob("fold_*") if p.is_dir())
    if not folds:
        raise BATsegError(f"{results} is not an nnU-Net results trainer folder (it has no fold_* folders)")
    if len(folds) != 1:
        raise BATsegError(f"{results} holds folds {', '.join(folds)}; choose one with --fold")
    return folds[0]


def trainer_folder_and_fold(results: Path, fold: str | None) -> tuple[Path, str]:
    """The trainer folder and fold; a `fold_K` folder given as --results is read as its parent and K."""
    from batseg.errors import BATsegError

    if results.name.startswith("fold_") and results.is_dir():
        own = results.name[5:]
        if fold is not None and fold != own:
            raise BATsegError(f"--results {results.name} and --fold {fold} disagree; give the trainer folder with --fold")
        return results.parent, own
    return results, fold or only_fold(results)


def run(args: argparse.Namespace) -> int:
    from batseg.atomic_files import remove_stale_parts_beside
    from batseg.progress import Progress
    from batseg.training.package import package_results
    from batseg.training.run import check_output

    progress = Progress(args.progress)
    results = args.results.expanduser().resolve()
    output = check_output(args.output, args.overwrite)
    remove_stale_parts_beside(output)  # an earlier run killed while writing the model file
    results, fold = trainer_folder_and_fold(results, args.fold)
    checkpoint = f"checkpoint_{args.checkpoint}.pth" if args.checkpoint else None
    with progress.stage("package"):
        path = package_results(results, fold, output, args.name, args.model_version, args.overwrite, checkpoint)
    progress.log(f"model file written: {path}")
    progress.result(outputs={"model": str(path)})
    return 0
