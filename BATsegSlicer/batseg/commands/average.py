"""`batseg average`: one model from the weight average of several fine-tunings of one parent.

A thin wrapper over `batseg.training.weight_average` (what is averaged, and why only siblings).
The result needs its postprocessing chosen again (`batseg tune-postprocess`), which the command
says when it ends.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `average` sub-command."""
    parser = subparsers.add_parser(
        "average",
        help="average the weights of models fine-tuned from one parent into one model (model soup)",
        description="Average the weights of two or more models fine-tuned from the same parent "
        "(batseg train --finetune-from, e.g. with different data seeds) into one model of the same size and speed "
        "(a 'model soup', Wortsman et al. 2022). Models with different parents, architectures or classes are "
        "refused. The average has no postprocessing setting: choose it with batseg tune-postprocess.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model files (.batseg) to average, at least two")
    parser.add_argument("-o", "--output", required=True, help="the averaged model file to write (.batseg)")
    parser.add_argument("--version", help="version of the averaged model (default: the first model's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Average, write, and say what to do next."""
    from batseg.errors import BATsegError
    from batseg.model_file import MODEL_SUFFIX
    from batseg.training.weight_average import average_model_files

    if not args.output.endswith(MODEL_SUFFIX):
        raise BATsegError(f"--output {args.output} must end in {MODEL_SUFFIX}")
    path = average_model_files(args.models, args.output, version=args.version, overwrite=args.overwrite)
    print(f"wrote {path}: the weight average of {len(args.models)} models; it has no postprocessing setting yet: "
          f"batseg tune-postprocess --model {path} --data VALIDATION_DATASET --output TUNED.batseg", flush=True)
    return 0
