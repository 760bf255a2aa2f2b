"""`batseg predict`: segment an image file, a folder of images or a DICOM series.

For each case CASE (the input's file name without extension and without nnU-Net's `_0000`
channel suffix, or the DICOM folder's name) it writes OUT_DIR/CASE.nii.gz (uint8 labels on the
input's exact grid), CASE.report.json and CASE.report.csv, and on request
CASE.probabilities.nii.gz and CASE.field.nii.gz (see `batseg.inference.pipeline`). Every output path is checked before the
model is loaded. The model's disclaimer (trained on synthetic phantoms; not for clinical use)
is printed once, before the first outputs are written.

Exit status: 0 when every case was segmented, 2 when the input, an option or the model is
wrong (one line on stderr per failed case; in a folder the other cases still run, and a last
line says how many failed). A run refused before any work (an option, the model, an output
that exists, is an input or is shared by two cases) writes nothing.

With ``--progress json`` (the Slicer module) each segmented case ends with one event
``{"event": "result", "case", "input", "outputs": {"labels", "report_json", "report_csv"
[, "probabilities"][, "field"]}, "lesions", "total_volume_cm3", "timings": {"read",
"preprocess", "predict", "resample back", "postprocess", "report", "write", "total"} (seconds),
"peak_memory_mb", "warnings": [...], "details": {"model_shape", "tile", "tiles", "backend",
"device", "tta", "resampling", ...}}``; warnings (the disclaimer, a non-sagittal image, a scan
whose metadata says it is not T1: `batseg.acquisition`) are ``log`` events starting with "warning: ".
"""

from __future__ import annotations

import argparse
import sys


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
        help="sliding-window tile: auto (whole volume when it fits, default), patch (training patch) or Z,Y,X",
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
        "--one-type-per-lesion", action=argparse.BooleanOptionalAction, default=None,
        help="give each lesion the single most probable tumour type (default: the model's choice, made on validation "
        "data by batseg tune-postprocess; off for a model without one or with --no-postprocess)",
    )
    parser.add_argument("--save-probabilities", action="store_true", help="also write CASE.probabilities.nii.gz (classes 1-4)")
    parser.add_argument("--save-field", action="store_true", help="also write CASE.field.nii.gz (distance-field head output)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress display (default bar)")
    parser.set_defaults(func=run)


def _warn(progress, message: str) -> None:
    """A warning line: a log event in json mode, else one line on stderr."""
    if progress.mode == "json":
        progress.log(f"warning: {message}")
    else:
        sys.stderr.write(f"batseg: warning: {message}\n")
        sys.stderr.flush()


def options_from(args: argparse.Namespace):
    """PredictOptions from the parsed arguments."""
    import math

    from batseg.errors import BATsegError
    from batseg.inference.backends import check_threads
    from batseg.inference.pipeline import PredictOptions
    from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3

    min_volume = DEFAULT_MIN_VOLUME_MM3 if args.min_volume is None else float(args.min_volume)  # None: run() takes the model's
    if not math.isfinite(min_volume) or min_volume < 0:  # inf would remove every lesion, nan none
        raise BATsegError(f"--min-volume {args.min_volume} must be a finite number, zero or positive (mm3)")
    check_threads(args.threads)  # before anything loads: a huge count crashed the runtimes
    return PredictOptions(
        tta=args.tta,
        postprocess=not args.no_postprocess,
        min_volume_mm3=min_volume,
        one_type_per_lesion=bool(args.one_type_per_lesion),  # None: run() takes the model's
        save_probabilities=args.save_probabilities,
        save_field=args.save_field,
        overwrite=args.overwrite,
    )


def run(args: argparse.Namespace) -> int:
    """Segment every case of the input; see the module docstring for the exit status."""
    from dataclasses import replace
    from pathlib import Path

    from batseg.atomic_files import remove_stale_parts
    from batseg.errors import BATsegError
    from batseg.inference.pipeline import check_outputs, segment_cases
    from batseg.inference.predictor import Predictor
    from batseg.inference.sliding_window import parse_tile
    from batseg.io import find_cases
    from batseg.models import resolve_model
    from batseg.postprocess_settings import recommended_min_volume, recommended_one_type_per_lesion
    from batseg.progress import Progress

    progress = Progress(args.progress)
    options = options_from(args)
    tile = parse_tile(args.tile)
    out_dir = Path(args.output).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise BATsegError(f"output {out_dir} is a file; give a folder")
    source = _named_input(args.input)
    cases = find_cases(source)
    if source.is_dir() and out_dir.exists() and out_dir.resolve() == source.resolve():
        raise BATsegError("the output folder is the input folder; write the results to another folder")
    check_outputs(cases, out_dir, options)
    predictor = Predictor(
        resolve_model(args.model), device=args.device, backend=args.backend, threads=args.threads, tile=tile,
        progress=progress,
    )
    if args.min_volume is None and options.postprocess:
        options = replace(options, min_volume_mm3=recommended_min_volume(predictor.manifest))
    if args.one_type_per_lesion is None and options.postprocess:
        options = replace(options, one_type_per_lesion=recommended_one_type_per_lesion(predictor.manifest))
    if options.save_field and not predictor.field_channels:
        raise BATsegError(f"model {predictor.manifest.get('name')!r} has no distance-field head; drop --save-field")
    _log_removed(progress, remove_stale_parts(out_dir))
    disclaimer_shown = []

    def show_disclaimer() -> None:
        if not disclaimer_shown:
            _warn(progress, predictor.disclaimer)
            disclaimer_shown.append(True)

    def report(result: dict) -> None:
        for message in result["warnings"]:
            _warn(progress, f"{result['case']}: {message}")
        progress.result(**result)
        if progress.mode == "bar":
            sys.stderr.write(
                f"{result['case']}: {result['lesions']} lesion(s), {result['total_volume_cm3']:.2f} cm3 -> "
                f"{result['outputs']['labels']} ({result['timings']['total']:.1f} s)\n"
            )

    failed = segment_cases(predictor, cases, out_dir, options, progress, report, before_write=show_disclaimer)
    if failed:
        shown = ", ".join(failed[:10]) + (", ..." if len(failed) > 10 else "")
        progress.error(f"{len(failed)} of {len(cases)} cases failed ({shown}); the others were segmented")
    return 2 if failed else 0


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
