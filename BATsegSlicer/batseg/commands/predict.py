"""`batseg predict`: segment an image file, a folder of images or a DICOM series.

For each case CASE (the input's file name without extension and without nnU-Net's `_0000`
channel suffix, or the DICOM folder's name) it writes OUT_DIR/CASE.nii.gz (uint8 labels on the
input's exact grid), CASE.report.json and CASE.report.csv, and on request
CASE.probabilities.nii.gz, CASE.field.nii.gz, CASE.qc.png (--qc, a quality-control picture) and
CASE.seg.dcm (--dicom-seg, a DICOM Segmentation object for a DICOM input); with --cohort the run
also writes OUT_DIR/cohort.csv and cohort.json, one row per case (see
`batseg.inference.pipeline`). Every output path is checked before the model is loaded. The
model's disclaimer (trained on synthetic phantoms; not for clinical use) is printed once, at the
start of the run (on stdout with the progress bar, a log event with --progress json; with
--progress quiet on stderr, before the first outputs are written).

A folder's image files are its cases (with --recursive, those of its whole tree: a BIDS folder);
files named or made like label maps or masks are skipped with a note (`batseg.batch`). With
--continue, cases whose outputs an earlier run completed are not segmented again.

Exit status: 0 when every case was segmented (or skipped as a label map, or complete), 2 when
the input, an option or the model is wrong (one line on stderr per failed case; in a folder the
other cases still run, and a last line says how many failed). A run refused before any work (an
option, the model, an output that exists, is an input or is shared by two cases) writes nothing.

With ``--progress json`` (the Slicer module) each segmented case ends with one event
``{"event": "result", "case", "input", "outputs": {"labels", "report_json", "report_csv"
[, "probabilities"][, "field"][, "qc"][, "dicom_seg"]}, "lesions", "total_volume_cm3", "timings":
{"read", "preprocess", "predict", "resample back", "postprocess", "report", ["qc picture",]
["dicom seg",] "write", "total"} (seconds), "peak_memory_mb", "warnings": [...], "details":
{"model_shape", "tile", "tiles", "backend", "device", "tta", "resampling", ...}}``; a batch of
several cases sends ``{"event": "progress", "stage": "cases", "done", "total"}`` before each
case; warnings (the disclaimer, a non-sagittal image, a scan whose metadata says it is not T1:
`batseg.acquisition`) are ``log`` events starting with "warning: ".
"""

from __future__ import annotations

import argparse
import sys

from batseg.commands.cord_arguments import add_cord_arguments, cord_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="segment spinal cord tumours in a sagittal T1 Gd volume (file, folder or DICOM series)",
        description="Segment spinal cord tumours (meningioma, ependymoma, astrocytoma, hemangioblastoma) in "
        "sagittal T1 Gd MRI. Writes OUT_DIR/CASE.nii.gz (labels 0-4 on the input grid) and a per-lesion report "
        "(CASE.report.json, CASE.report.csv). Research software: the shipped model is trained on synthetic "
        "phantoms only and is not for clinical use.",
    )
    parser.add_argument(
        "-i", "--input", required=True,
        help="image file (.nii.gz, .nii, .nrrd, .mha), a folder of such files, a DICOM series folder or a DICOMDIR",
    )
    parser.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    parser.add_argument("--model", help="model file (.batseg) or the name of an installed model (default: the shipped model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run (default auto)")
    parser.add_argument(
        "--backend", choices=("auto", "torch", "onnx"), default="auto",
        help="inference engine (default auto: ONNX Runtime on the CPU, PyTorch on a GPU)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the libraries' choice)")
    parser.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (8 passes, slower)")
    parser.add_argument(
        "--tile", default="auto",
        help="sliding-window tile: auto (default: the box around the cord as one tile when it fits, the training "
        "patch on the whole scan), patch (the training patch everywhere, nnU-Net's tiling) or Z,Y,X",
    )
    parser.add_argument(
        "--no-postprocess", action="store_true", help="keep the raw labels (no hole filling, no small-lesion removal)"
    )
    parser.add_argument(
        "--min-volume", type=float, default=None, metavar="MM3",
        help="remove lesions smaller than this volume in mm3 (default: the model's, chosen on validation data by "
        "batseg tune-postprocess; else batseg.postprocess_settings.DEFAULT_MIN_VOLUME_MM3)",
    )
    parser.add_argument(
        "--min-tumour-probability", type=float, default=None, metavar="P",
        help="remove lesions whose mean tumour probability (any type) is below P, from 0 (keep all) to 0.999 "
        "(default: the model's, chosen on validation data by batseg tune-postprocess; else 0)",
    )
    parser.add_argument(
        "--min-enhancement", type=float, default=None, metavar="R",
        help="remove lesions whose median signal is below R times the spinal cord's (a lesion that does not "
        "enhance), from 0 (keep all) to 5; needs a cord (the locator's or --cord-masks); misses non-enhancing "
        "astrocytomas (default: the model's, chosen on validation data by batseg tune-postprocess; else 0)",
    )
    parser.add_argument(
        "--one-type-per-lesion", action=argparse.BooleanOptionalAction, default=None,
        help="give each lesion the single most probable tumour type (default: the model's choice, made on validation "
        "data by batseg tune-postprocess; off for a model without one or with --no-postprocess)",
    )
    parser.add_argument("--save-probabilities", action="store_true", help="also write CASE.probabilities.nii.gz (classes 1-4)")
    parser.add_argument("--save-field", action="store_true", help="also write CASE.field.nii.gz (distance-field head output)")
    parser.add_argument(
        "--qc", action="store_true",
        help="also write CASE.qc.png: the sagittal slice through each lesion with the labels in the tumour colours",
    )
    parser.add_argument(
        "--dicom-seg", action="store_true",
        help="also write CASE.seg.dcm, a DICOM Segmentation object referencing the source series (DICOM inputs)",
    )
    parser.add_argument(
        "--cohort", action="store_true",
        help="also write OUT_DIR/cohort.csv and cohort.json: one row per case (model, settings, lesions, volumes, "
        "warnings, time)",
    )
    parser.add_argument(
        "--continue", dest="resume", action="store_true",
        help="resume an interrupted batch: cases whose outputs are complete (same model and settings) are skipped",
    )
    parser.add_argument(
        "--recursive", action="store_true",
        help="search the input folder's sub-folders for images too (a BIDS tree; derivatives/ is left out)",
    )
    add_cord_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress display (default bar)")
    parser.set_defaults(func=run)


def options_from(args: argparse.Namespace):
    """PredictOptions from the parsed arguments."""
    import math

    from batseg.errors import BATsegError
    from batseg.inference.backends import check_threads
    from batseg.inference.pipeline import PredictOptions
    from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3, MAX_MIN_ENHANCEMENT, MAX_MIN_TUMOUR_PROBABILITY

    min_volume = DEFAULT_MIN_VOLUME_MM3 if args.min_volume is None else float(args.min_volume)  # None: run() takes the model's
    if not math.isfinite(min_volume) or min_volume < 0:  # inf would remove every lesion, nan none
        raise BATsegError(f"--min-volume {args.min_volume} must be a finite number, zero or positive (mm3)")
    least = 0.0 if args.min_tumour_probability is None else float(args.min_tumour_probability)
    if not math.isfinite(least) or not 0 <= least <= MAX_MIN_TUMOUR_PROBABILITY:  # 1 would remove every lesion
        raise BATsegError(f"--min-tumour-probability {args.min_tumour_probability} must be a number from 0 (keep every "
                          f"lesion) to {MAX_MIN_TUMOUR_PROBABILITY:g}")
    enhancement = 0.0 if args.min_enhancement is None else float(args.min_enhancement)
    if not math.isfinite(enhancement) or not 0 <= enhancement <= MAX_MIN_ENHANCEMENT:
        raise BATsegError(f"--min-enhancement {args.min_enhancement} must be a number from 0 (keep every lesion) to "
                          f"{MAX_MIN_ENHANCEMENT:g} (times the cord's signal)")
    check_threads(args.threads)  # before anything loads: a huge count crashed the runtimes
    cord = cord_settings(args)
    return PredictOptions(
        tta=args.tta,
        postprocess=not args.no_postprocess,
        min_volume_mm3=min_volume,
        one_type_per_lesion=bool(args.one_type_per_lesion),  # None: run() takes the model's
        min_tumour_probability=least,  # None: run() takes the model's
        min_enhancement=enhancement,  # None: run() takes the model's
        save_probabilities=args.save_probabilities,
        save_field=args.save_field,
        overwrite=args.overwrite,
        qc=getattr(args, "qc", False),
        dicom_seg=getattr(args, "dicom_seg", False),
        cohort=getattr(args, "cohort", False),
        resume=getattr(args, "resume", False),
        cord_masks=cord.cord_masks,
        crop_margin_mm=cord.crop_margin_mm,
        cord_locator=cord.cord_locator,
        min_volume_from="option" if args.min_volume is not None else "default",
        one_type_from="option" if args.one_type_per_lesion is not None else "default",
        min_probability_from="option" if args.min_tumour_probability is not None else "default",
        min_enhancement_from="option" if args.min_enhancement is not None else "default",
    )


def run(args: argparse.Namespace) -> int:
    """Segment every case of the input; see the module docstring for the exit status."""
    from dataclasses import replace
    from pathlib import Path

    from batseg.atomic_files import remove_stale_parts
    from batseg.batch import find_batch_cases
    from batseg.errors import BATsegError
    from batseg.inference.pipeline import (
        check_outputs, complete_cases, model_identity, resumed_cases, run_settings, segment_cases, write_cohort,
    )
    from batseg.inference.predictor import Predictor
    from batseg.inference.sliding_window import parse_tile
    from batseg.models import resolve_model
    from batseg.postprocess_settings import (
        POSTPROCESSING_KEY, recommended_min_enhancement, recommended_min_tumour_probability, recommended_min_volume,
        recommended_one_type_per_lesion,
    )
    from batseg.progress import Progress

    progress = Progress(args.progress)
    options = options_from(args)
    tile = parse_tile(args.tile)
    out_dir = Path(args.output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise BATsegError(f"output {out_dir} is a file; give a folder")
    source = _named_input(args.input)
    if source.is_dir() and out_dir.exists() and out_dir.resolve() == source.resolve():
        raise BATsegError("the output folder is the input folder; write the results to another folder")
    cases, skipped = find_batch_cases(source, recursive=getattr(args, "recursive", False), exclude=(out_dir,))
    if options.cord_masks is not None and options.cord_masks.is_file() and len(cases) > 1:
        raise BATsegError(
            f"--cord-masks {options.cord_masks} is one file but the input holds {len(cases)} cases; give a folder "
            "of CASE_seg.nii.gz masks"
        )
    check_outputs(cases, out_dir, options)
    complete = complete_cases(cases, out_dir, options)
    predictor = Predictor(
        resolve_model(args.model), device=args.device, backend=args.backend, threads=args.threads, tile=tile,
        progress=progress,
    )
    chosen_by_model = "model" if POSTPROCESSING_KEY in predictor.manifest else "default"
    if args.min_volume is None and options.postprocess:
        options = replace(options, min_volume_mm3=recommended_min_volume(predictor.manifest), min_volume_from=chosen_by_model)
    if args.one_type_per_lesion is None and options.postprocess:
        options = replace(options, one_type_per_lesion=recommended_one_type_per_lesion(predictor.manifest),
                          one_type_from=chosen_by_model)
    if args.min_tumour_probability is None and options.postprocess:
        options = replace(options, min_tumour_probability=recommended_min_tumour_probability(predictor.manifest),
                          min_probability_from=chosen_by_model)
    if args.min_enhancement is None and options.postprocess:
        options = replace(options, min_enhancement=recommended_min_enhancement(predictor.manifest),
                          min_enhancement_from=chosen_by_model)
    if options.save_field and not predictor.field_channels:
        raise BATsegError(f"model {predictor.manifest.get('name')!r} has no distance-field head; drop --save-field")
    resumed = resumed_cases(complete, model_identity(predictor.manifest), run_settings(options, predictor), options)
    _log_removed(progress, remove_stale_parts(out_dir))
    disclaimer_shown = []

    def show_disclaimer() -> None:
        if not disclaimer_shown:
            progress.warn(predictor.disclaimer)
            disclaimer_shown.append(True)

    if progress.mode == "bar":
        # Once, before any case's log; on stdout, so that a refused case's stderr stays its one error line.
        print(f"batseg: {' '.join(predictor.disclaimer.split())}", flush=True)
        disclaimer_shown.append(True)
    elif progress.mode == "json":
        show_disclaimer()
    _log_batch(progress, cases, skipped, options)

    def report(result: dict) -> None:
        for message in result["warnings"]:
            progress.warn(f"{result['case']}: {message}")
        progress.result(**result)
        if progress.mode == "bar":
            sys.stderr.write(
                f"{result['case']}: {result['lesions']} lesion(s), {result['total_volume_cm3']:.2f} cm3 -> "
                f"{result['outputs']['labels']} ({result['timings']['total']:.1f} s)\n"
            )

    started = run_settings(options, predictor)["created"]
    outcome = segment_cases(
        predictor, cases, out_dir, options, progress, report, before_write=show_disclaimer, resumed=resumed,
        skipped=skipped,
    )
    if options.cohort:
        run_facts = {
            "started": started,
            "finished": run_settings(options, predictor)["created"],
            "input": str(source),
            "output": str(out_dir),
            "model": model_identity(predictor.manifest),
            "disclaimer": predictor.disclaimer,
        }
        written = write_cohort(outcome.rows, out_dir, options, run_facts)
        progress.log(f"cohort table ({len(outcome.rows)} rows): {written[0]} and {written[1].name}")
    if outcome.skipped:
        progress.log(f"{len(outcome.skipped)} input(s) skipped as label maps or masks: {_shown(outcome.skipped)}")
    if outcome.failed:
        progress.error(
            f"{len(outcome.failed)} of {len(cases)} cases failed ({_shown(outcome.failed)}); the others were segmented"
        )
    return 2 if outcome.failed else 0


def _shown(names: list[str]) -> str:
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def _log_batch(progress, cases: list, skipped: list, options) -> None:
    """Notes before the first case: inputs skipped while listing, cases without a DICOM SEG."""
    if skipped:
        names = ", ".join(entry.path.name for entry in skipped[:10]) + (", ..." if len(skipped) > 10 else "")
        progress.log(f"{len(skipped)} file(s) skipped, not segmented (label maps or masks by their name or kind): {names}")
    if options.dicom_seg:
        others = [case.name for case in cases if case.kind != "dicom"]
        if others:
            progress.log(f"no DICOM SEG for {len(others)} case(s) that are not DICOM series: {_shown(others)}")


def _named_input(given: str):
    """The input path, spelt out where its own name is missing (`-i .` names the case after the folder)."""
    import os
    from pathlib import Path

    source = Path(given).expanduser()
    # Path(".").name is "" and Path("..").name "..": the case would be named "" (hidden ".nii.gz" outputs).
    return Path(os.path.abspath(source)) if source.name in ("", "..") else source


def _log_removed(progress, removed: list) -> None:
    """Say which temporary files of an earlier, killed run were removed."""
    if removed:
        progress.log(f"removed {len(removed)} temporary file(s) left by an interrupted earlier run in {removed[0].parent}")
