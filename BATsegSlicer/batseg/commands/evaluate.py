"""`batseg evaluate`: score predicted label files against ground truth (Dice, HD95, detection).

Prints the table on stdout; writes the full results as JSON (-o) and a PNG chart (--png: per-class
Dice and HD95 with each case, type confusion, detection and false-positive rates, the per-case
spread, titled with the model's name) when asked. The model is read from the CASE.report.json
files `batseg predict` writes beside its label maps, or named with --model-name. Output paths are checked before any case is scored, so a refusal costs nothing; an
output is never written over an input label file, even with --overwrite.
"""

from __future__ import annotations

import argparse
import math


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted label files against ground truth (Dice, HD95, lesion detection)",
        description="Score predicted label maps against ground-truth label maps, matched by case name "
        "(CASE.nii.gz on both sides, as nnU-Net and `batseg predict` name them). Per-class Dice and HD95 "
        "(over the cases containing the class; a missing prediction scores HD95 450 mm), lesion detection "
        "(overlap >= 6 mm3), lesion type accuracy and confusion, patient-level sensitivity.",
    )
    parser.add_argument("--pred", required=True, help="predicted label file or folder of CASE.nii.gz files")
    parser.add_argument("--gt", required=True, help="ground-truth label file or folder of CASE.nii.gz files")
    parser.add_argument("-o", "--output", help="write the full results (every case) to this JSON file")
    parser.add_argument(
        "--png",
        help="write a chart to this PNG file (per-class Dice and HD95 with each case, type confusion, detection and "
        "false-positive rates, per-case Dice, the model's name)",
    )
    parser.add_argument(
        "--model-name",
        help="name of the model that made the predictions (default: read from the CASE.report.json files beside them)",
    )
    parser.add_argument(
        "--min-overlap-mm3", type=float, default=None,
        help="overlap that makes a lesion detected, in mm3 (default: Lemay et al.'s 6 mm3, "
        "batseg.metrics.DETECTION_MIN_OVERLAP_MM3)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument(
        "--progress", choices=("bar", "json", "quiet"), default="bar", help="progress display (default bar)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the requested files."""
    from batseg.atomic_files import check_can_write, remove_stale_parts_beside
    from batseg.errors import BATsegError
    from batseg.evaluation import check_not_input, evaluate_paths, format_table, save_chart, save_results_json
    from batseg.metrics import DETECTION_MIN_OVERLAP_MM3
    from batseg.progress import Progress

    if args.output and args.png and args.output == args.png:
        raise BATsegError("the JSON output and the PNG chart must be different files")
    for option, path in (("-o", args.output), ("--png", args.png)):
        if path:
            check_not_input(path, option, args.pred, args.gt)
            check_can_write(path, args.overwrite)
    min_overlap_mm3 = DETECTION_MIN_OVERLAP_MM3 if args.min_overlap_mm3 is None else args.min_overlap_mm3
    if not math.isfinite(min_overlap_mm3) or min_overlap_mm3 < 0:  # nan detects nothing and writes NaN into the JSON
        raise BATsegError(f"--min-overlap-mm3 {args.min_overlap_mm3} must be a finite number, zero or positive (mm3)")
    progress = Progress(args.progress)
    remove_stale_parts_beside(args.output, args.png)
    results = evaluate_paths(args.pred, args.gt, progress, min_overlap_mm3=min_overlap_mm3, model_name=args.model_name)
    print(format_table(results), flush=True)
    outputs = {}
    if args.output:
        outputs["json"] = str(save_results_json(results, args.output, args.overwrite))
    if args.png:
        outputs["png"] = str(save_chart(results, args.png, args.overwrite))
    summary = results["aggregate"]
    progress.result(
        outputs=outputs,
        n_cases=summary["n_cases"],
        mean_dice=summary["mean_over_classes"]["dice"],
        mean_hd95=summary["mean_over_classes"]["hd95"],
    )
    return 0
