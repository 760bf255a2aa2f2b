"""`batseg tune-postprocess`: choose a model's postprocessing on labelled validation cases.

See `batseg.postprocess_tuning` for the candidates and the criterion. Prints the table; with
--output, writes a copy of the model file whose manifest records the choice (the given model
file is never modified), which `batseg predict` and the Slicer module then use by default. The
copy has a version of its own (the parent's with "+pp.HASH", or --version) and names its parent
("derived_from"), so its reports are told apart from the parent's. Validation data without a
healthy case, or with fewer than 5 cases of a tumour type, get a warning.

Each case is predicted along the same path as `batseg predict` with the same cord flags (by
default the cascade crop around the cord that the cord locator finds), and the model file records
that path ("predicted_with"): a volume chosen on whole-volume predictions, with their false lesions
outside the canal, is not the right one for the crop.
"""

from __future__ import annotations

import argparse

from batseg.commands.cord_arguments import CordSettings, add_cord_arguments, cord_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tune-postprocess` sub-command."""
    parser = subparsers.add_parser(
        "tune-postprocess",
        help="choose a model's minimum lesion volume, minimum lesion probability, minimum enhancement and "
        "one-type-per-lesion setting on validation cases",
        description="Predict each validation case once, apply every candidate minimum lesion volume, minimum mean "
        "tumour probability and minimum enhancement (with and without one tumour type per lesion), score them "
        "(mean Dice over classes and lesion detection F1) and print the table. Use validation cases, never the "
        "cases you report test results on.",
    )
    parser.add_argument("--model", help="model file (.batseg) or installed model name (default: the shipped model)")
    parser.add_argument("--data", required=True, help="nnU-Net raw dataset folder of validation cases (imagesTr, labelsTr)")
    parser.add_argument("--output", help="write a copy of the model file recording the chosen volume here (.batseg)")
    parser.add_argument("--candidates", type=float, nargs="+", default=None, metavar="MM3",
                        help="minimum volumes to try (default 0 10 20 50 100 200 500 1000)")
    parser.add_argument("--probability-candidates", type=float, nargs="+", default=None, metavar="P",
                        help="minimum mean tumour probabilities of a kept lesion to try (default 0 0.5 0.6 0.7 0.75 "
                        "0.8 0.85 0.9; 0 keeps every lesion)")
    parser.add_argument("--enhancement-candidates", type=float, nargs="+", default=None, metavar="R",
                        help="minimum enhancements of a kept lesion (its median signal over the cord's) to try, "
                        "e.g. 0 1.1 1.15 1.2 1.25 1.3 (default 0 alone: keep every lesion). Only with validation "
                        "cases whose tumours enhance as yours do: a minimum drops non-enhancing tumours")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the libraries' choice)")
    add_cord_arguments(parser, "run the model")
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument(
        "--version", dest="model_version", default=None,
        help="version of the tuned copy (default: the parent's with +pp. and 8 hex digits of the choice)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing --output / --json files")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress display (default bar)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune, print the table, and write the tuned model file when asked."""
    import dataclasses
    import json
    from pathlib import Path

    from batseg.atomic_files import check_can_write, remove_stale_parts_beside, write_text_atomically
    from batseg.errors import BATsegError
    from batseg.inference.backends import check_threads
    from batseg.inference.predictor import Predictor
    from batseg.model_file import MODEL_SUFFIX, with_manifest_updates
    from batseg.models import resolve_model
    from batseg.postprocess_tuning import (
        CANDIDATES_MM3, ENHANCEMENT_CANDIDATES, PROBABILITY_CANDIDATES, check_candidates, check_enhancement_candidates,
        check_probability_candidates, format_table, manifest_entry, tune_postprocessing, tuned_identity,
        validation_pairs,
    )
    from batseg.progress import Progress

    if args.output and not args.output.endswith(MODEL_SUFFIX):
        raise BATsegError(f"--output {args.output} must end in {MODEL_SUFFIX}")
    check_threads(args.threads)  # as predict refuses it, before any data is read
    cord = cord_settings(args)
    if args.model_version is not None and not args.model_version.strip():
        raise BATsegError("--version must not be empty")
    candidates = CANDIDATES_MM3 if args.candidates is None else args.candidates
    check_candidates(candidates)
    probabilities = PROBABILITY_CANDIDATES if args.probability_candidates is None else args.probability_candidates
    check_probability_candidates(probabilities)
    enhancements = ENHANCEMENT_CANDIDATES if args.enhancement_candidates is None else args.enhancement_candidates
    check_enhancement_candidates(enhancements)
    for path in (args.output, args.json):
        if path:
            check_can_write(path, args.overwrite)
    if args.output and args.json and Path(args.output).expanduser().absolute() == Path(args.json).expanduser().absolute():
        raise BATsegError("--output and --json must be different files")
    model = resolve_model(args.model)
    if args.output and Path(args.output).expanduser().resolve() == model.resolve():
        raise BATsegError("--output is the model file itself; write the tuned copy to another file")
    if args.json and Path(args.json).expanduser().resolve() == model.resolve():
        raise BATsegError("--json is the model file itself; write the table to another file")
    progress = Progress(args.progress)
    pairs = validation_pairs(args.data)
    _check_not_data(pairs, args.output, args.json)
    if cord.cord_masks is not None and cord.cord_masks.is_file() and len(pairs) > 1:
        raise BATsegError(f"--cord-masks {cord.cord_masks} is one file but {args.data} holds {len(pairs)} cases; give a "
                          "folder of CASE.nii.gz masks")
    predictor = Predictor(model, device=args.device, threads=args.threads, progress=Progress("quiet"))
    remove_stale_parts_beside(args.output, args.json)
    with progress.stage("tune"):
        tuning = tune_postprocessing(
            lambda case, image: _raw_prediction(predictor, case, image, cord), pairs, candidates,
            lambda done, total: progress.update("tune", done, total), probability_candidates=probabilities,
            enhancement_candidates=enhancements,
        )
    print(format_table(tuning), flush=True)
    entry = manifest_entry(tuning, args.data, cord.as_dict())
    for message in entry["postprocessing"]["warnings"]:
        progress.warn(message)
    identity = tuned_identity(predictor.manifest, entry, args.model_version)
    if args.json:
        table = {"cases": tuning.cases, "candidates": [dataclasses.asdict(c) for c in tuning.candidates], **entry}
        write_text_atomically(args.json, json.dumps(table, indent=2) + "\n", args.overwrite)
    if args.output:
        written = with_manifest_updates(model, {**entry, **identity}, args.output, overwrite=args.overwrite)
        progress.log(f"model file with the chosen postprocessing written: {written} (version {identity['version']})")
    progress.result(chosen_min_volume_mm3=tuning.chosen.min_volume_mm3,
                    chosen_one_type_per_lesion=tuning.chosen.one_type_per_lesion,
                    chosen_min_tumour_probability=tuning.chosen.min_tumour_probability,
                    chosen_min_enhancement=tuning.chosen.min_enhancement,
                    outputs={"model": args.output, "json": args.json})
    return 0


def _check_not_data(pairs, *outputs: str | None) -> None:
    """Refuse an output that is one of the validation images or label files."""
    from pathlib import Path

    from batseg.errors import BATsegError

    inputs = {path.resolve() for case, label in pairs for path in (case.path, label)}
    for output in outputs:
        if output and Path(output).expanduser().resolve() in inputs:
            raise BATsegError(f"output {output} is one of the validation files; write it elsewhere")


def _raw_prediction(predictor, case, image, cord: CordSettings):
    """Labels without postprocessing, class probabilities and the cord's signal on the case's grid,
    along predict's path."""
    import SimpleITK as sitk

    from batseg import acquisition
    from batseg.enhancement import cord_reference
    from batseg.inference.case_cord import find_case_cord

    mask = find_case_cord(case, image, cord.cord_masks, cord.cord_locator, acquisition.of_case(case)).mask
    crop = {} if mask is None or cord.crop_margin_mm is None else {"roi": mask, "crop_margin_mm": cord.crop_margin_mm}
    prediction = predictor.predict(image, probabilities=True, **crop)
    signal = cord_reference(sitk.GetArrayViewFromImage(image), mask, sitk.GetArrayViewFromImage(prediction.labels) > 0)
    return prediction.labels, prediction.probabilities, signal
