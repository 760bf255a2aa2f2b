"""One case from file to files: read, predict, postprocess, report, write.

Used by `batseg predict` (and, through it, by the Slicer module and `batseg benchmark`).
Outputs for a case named CASE (the input file name without its extension, or the DICOM
folder's name), all written atomically into OUT_DIR:
- CASE.nii.gz: uint8 label map 0-4 on the input's exact grid;
- CASE.report.json and CASE.report.csv: the per-lesion report (`batseg.report`); the JSON also
  holds the run's warnings and the input's acquisition facts (`batseg.acquisition`: a scan whose
  metadata says it is not T1, e.g. a T2 series loaded by mistake, gets a warning);
- CASE.probabilities.nii.gz (option): 4-component float32 image, tumour classes 1-4;
- CASE.field.nii.gz (option): the distance-field head's output, one component per channel;
- CASE.qc.png (option `qc`): the quality-control picture (`batseg.qc_picture`);
- CASE.seg.dcm (option `dicom_seg`, DICOM inputs only): a DICOM Segmentation object
  referencing the source series (`batseg.dicom_seg`).
The run as a whole writes, with option `cohort`, OUT_DIR/cohort.csv and cohort.json: one row
per case (`batseg.cohort`).

Every output path is checked before any work starts (an existing file is replaced only with
`overwrite`), and when writing fails half-way the files this run already wrote for the case
are removed, so a case has either all its outputs or none. Postprocessing (`batseg.postprocess`)
runs on the input grid, so volumes are the patient's; `--no-postprocess` skips hole filling and
small-lesion removal, while one-type-per-lesion stays a separate switch.

The outputs of a case are one consistent set: with `overwrite`, an optional output of an
earlier run that this run does not write (CASE.probabilities.nii.gz without
--save-probabilities) is removed with the new set's writing; without it, such a file is refused
like any existing output. No output may be an input or an output of another case (a.nii.gz's
probability map is the label map of an input a.probabilities.nii.gz), nor have a hidden name:
the run is refused before any work.

In a folder of inputs, one failing case (a bad image, memory exhausted, a file-system error,
even an unexpected error) never stops the others: `segment_cases` reports it in one line and
goes on; the command then exits with status 2 after a summary line. An input that turns out to
be a label map or mask (`batseg.batch.label_map_reason`) is skipped with a note in a batch and
refused in one line when it is the only input. Before each case of a batch a line says
"case i/N" with an estimate of the time left (the mean time of the cases done so far).

Resuming (`resume`, `batseg predict --continue`): a case whose outputs are all present (every
file this run would write, no optional output it would not, a readable report of that case) is
complete; it is not segmented again, provided its report names the same model (name, version,
weights sha256) and settings (postprocessing, minimum volume, one type per lesion, TTA). A
complete case made with another model or other settings is refused before any work unless
`overwrite` is given (then it is segmented again). Since a case's outputs are renamed into
place together, an interrupted batch leaves complete cases and cases without outputs only.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk

from batseg import __version__, acquisition
from batseg.atomic_files import check_can_write, write_all_or_nothing
from batseg.batch import NotAScan, Skipped, label_map_reason
from batseg.cohort import COHORT_CSV, COHORT_JSON, cohort_files, is_own_table, row_from_report, row_without_report
from batseg.dicom_seg import SEG_SUFFIX
from batseg.errors import BATsegError
from batseg.enhancement import cord_reference
from batseg.field_of_view import geometry_warnings
from batseg.inference.backends import is_out_of_memory
from batseg.inference.case_cord import find_case_cord
from batseg.inference.memory import peak_resident_bytes
from batseg.inference.predictor import Predictor
from batseg.io import Case, image_suffix, image_writer, read_image, vector_image
from batseg.postprocess import postprocess
from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3
from batseg.progress import Progress
from batseg.qc_picture import QC_SUFFIX
from batseg.report import lesion_report, report_files

LABEL_SUFFIX = ".nii.gz"
# Outputs written only on request, by kind: each belongs to its case's set even when not asked for.
OPTIONAL_SUFFIXES = {
    "probabilities": ".probabilities.nii.gz",
    "field": ".field.nii.gz",
    "qc": QC_SUFFIX,
    "dicom_seg": SEG_SUFFIX,
}
# The run's own outputs (option `cohort`), by kind.
RUN_OUTPUT_NAMES = {"cohort_csv": COHORT_CSV, "cohort_json": COHORT_JSON}
# The settings a resumed case's report must share with the run (besides the model).
RESUME_SETTINGS: tuple[str, ...] = ("postprocess", "min_volume_mm3", "min_tumour_probability", "min_enhancement",
                                     "one_type_per_lesion", "tta", "crop_margin_mm", "cord_locator")


# Postprocessing steps newer than some reports: a report without the key was made before the step
# existed, i.e. with it off, and resumes a run that leaves it off.
STEPS_ADDED_LATER: dict[str, Any] = {"min_tumour_probability": 0.0, "min_enhancement": 0.0}
# A minimum enhancement asked for (or the model's) that could not run: say so, not filter silently.
UNJUDGED_ENHANCEMENT = ("the minimum enhancement ({least:g} times the cord) was not applied: there is no spinal cord "
                        "signal to compare the lesions with (no trusted cord, too little of it beside the lesions, or "
                        "a normalised scan); every lesion above the other minimums is reported")


@dataclass(frozen=True)
class PredictOptions:
    """What to compute and write for each case."""

    tta: bool = False
    postprocess: bool = True
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3
    one_type_per_lesion: bool = False
    min_tumour_probability: float = 0.0  # a lesion's least mean tumour probability (batseg.postprocess)
    min_enhancement: float = 0.0  # a lesion's least median signal over the cord's (batseg.enhancement)
    save_probabilities: bool = False
    save_field: bool = False
    overwrite: bool = False
    qc: bool = False  # CASE.qc.png
    dicom_seg: bool = False  # CASE.seg.dcm for DICOM inputs
    cohort: bool = False  # OUT_DIR/cohort.csv and cohort.json
    resume: bool = False  # skip complete cases (--continue)
    cord_masks: Path | None = None  # a spinal cord mask file (one case) or a folder of CASE_seg masks
    crop_margin_mm: float | None = None  # with a cord mask: segment only a box around the cord (canal_crop)
    cord_locator: bool = False  # find the cord with the shipped locator where no cord mask is given
    min_volume_from: str = "option"  # where the minimum volume came from: option, model or default
    one_type_from: str = "option"  # where the one-type-per-lesion choice came from
    min_probability_from: str = "option"  # where the minimum tumour probability came from
    min_enhancement_from: str = "option"  # where the minimum enhancement came from


def output_paths(
    name: str, out_dir: Path, options: PredictOptions, every_kind: bool = False, dicom: bool = True
) -> dict[str, Path]:
    """The files a case will write, by kind; with `every_kind`, also the optional ones not asked for.

    `dicom`: whether the case is a DICOM series (only those get a DICOM SEG).
    """
    paths = {
        "labels": out_dir / f"{name}{LABEL_SUFFIX}",
        "report_json": out_dir / f"{name}.report.json",
        "report_csv": out_dir / f"{name}.report.csv",
    }
    wanted = {
        "probabilities": options.save_probabilities, "field": options.save_field, "qc": options.qc,
        "dicom_seg": options.dicom_seg and dicom,
    }
    for kind, suffix in OPTIONAL_SUFFIXES.items():
        if wanted[kind] or every_kind:
            paths[kind] = out_dir / f"{name}{suffix}"
    return paths


def case_output_paths(case: Case, out_dir: Path, options: PredictOptions, every_kind: bool = False) -> dict[str, Path]:
    """`output_paths` of a case (a DICOM SEG only for a DICOM series)."""
    return output_paths(case.name, out_dir, options, every_kind, dicom=case.kind == "dicom")


def run_output_paths(out_dir: Path, options: PredictOptions) -> dict[str, Path]:
    """The run's own outputs (the cohort table), by kind; none without option `cohort`."""
    return {kind: out_dir / name for kind, name in RUN_OUTPUT_NAMES.items()} if options.cohort else {}


def stale_outputs(name: str, out_dir: Path, options: PredictOptions, dicom: bool = True) -> list[Path]:
    """Existing outputs of an earlier run of case `name` that this run does not write anew."""
    written = output_paths(name, out_dir, options, dicom=dicom)
    every = output_paths(name, out_dir, options, every_kind=True, dicom=dicom)
    return [path for kind, path in every.items() if kind not in written and os.path.lexists(path)]


def complete_cases(cases: list[Case], out_dir: Path, options: PredictOptions) -> dict[str, dict[str, Any]]:
    """Case name -> its report, for the cases whose outputs of this run are all there (`resume` only).

    Complete: every output this run would write is a file, no optional output it would not
    write exists, and the report JSON is readable and names the case.
    """
    if not options.resume:
        return {}
    complete = {}
    for case in cases:
        written = case_output_paths(case, out_dir, options)
        if not all(path.is_file() for path in written.values()):
            continue
        if stale_outputs(case.name, out_dir, options, dicom=case.kind == "dicom"):
            continue
        try:
            report = json.loads(written["report_json"].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(report, dict) and report.get("case_id") == case.name:
            complete[case.name] = report
    return complete


def resumed_cases(
    complete: dict[str, dict[str, Any]], model: dict[str, Any], settings: dict[str, Any], options: PredictOptions
) -> dict[str, dict[str, Any]]:
    """The complete cases that this run skips: those made with its model and settings.

    A complete case made otherwise is refused (one line) without `overwrite`, and segmented
    again with it (module docstring).
    """
    kept = {}
    for name, report in complete.items():
        difference = _difference(report, model, settings)
        if difference is None:
            kept[name] = report
        elif not options.overwrite:
            raise BATsegError(
                f"case {name}'s outputs were made with {difference}; --continue resumes a run with the same model "
                "and settings: pass --overwrite to segment it again, or choose another output folder"
            )
    return kept


def _difference(report: dict[str, Any], model: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """What differs between a case's report and this run (None: nothing that changes the labels)."""
    made_with = report.get("model") or {}
    for key in ("weights_sha256", "name", "version"):
        if made_with.get(key) != model.get(key):
            return f"another model ({made_with.get('name')} {made_with.get('version')}, this run: {model.get('name')} {model.get('version')})"
    earlier = {**STEPS_ADDED_LATER, **(report.get("settings") or {})}
    for key in RESUME_SETTINGS:
        if earlier.get(key) != settings.get(key):
            return f"other settings ({key} {earlier.get(key)}, this run: {settings.get(key)})"
    return None


def check_outputs(cases: list[Case], out_dir: Path, options: PredictOptions) -> None:
    """Refuse before any work when an output is hidden, shared, an input, a folder, or exists.

    An input is never overwritten, even with `overwrite`: a label map written over the image it
    came from would destroy the user's data. An output of an earlier run that this run would
    leave beside its new outputs exists as far as `overwrite` is concerned (module docstring).
    With `resume`, the outputs of complete cases are kept, not refused (`complete_cases`).
    """
    for case in cases:
        _check_case_name(case)
    _check_no_shared_names(cases, out_dir)
    _check_dicom_seg(cases, out_dir, options)
    inputs = _input_files(cases)
    _check_run_outputs(cases, out_dir, options, inputs)
    complete = complete_cases(cases, out_dir, options)
    for case in cases:
        written = case_output_paths(case, out_dir, options)
        for kind, path in case_output_paths(case, out_dir, options, every_kind=True).items():
            if path.resolve() in inputs or _file_id(path) in inputs:
                raise BATsegError(f"output {path} would replace an input image; choose another output folder")
            if case.name in complete:
                continue  # kept as they are (resume)
            if kind in written:
                check_can_write(path, options.overwrite)
            elif path.is_dir():
                raise BATsegError(f"output {path} is a folder: move it away or choose another output folder")
            elif os.path.lexists(path) and not options.overwrite:
                raise BATsegError(
                    f"output {path} exists from an earlier run and would not match this run's outputs; "
                    "pass --overwrite (it is then removed) or choose another output folder"
                )


def _check_dicom_seg(cases: list[Case], out_dir: Path, options: PredictOptions) -> None:
    """A DICOM SEG needs a DICOM input, and is never written into a folder of an input series
    (it would join that series' folder and make it two series for the next run)."""
    if not options.dicom_seg:
        return
    dicom = [case for case in cases if case.kind == "dicom"]
    if not dicom:
        raise BATsegError(
            "--dicom-seg writes a DICOM SEG for DICOM inputs, and the input holds none (NIfTI, NRRD or MetaImage "
            "files); drop --dicom-seg"
        )
    target = out_dir.absolute()
    for case in dicom:
        if target == case.path.absolute() or target.resolve() == case.path.resolve():
            raise BATsegError(
                f"the output folder {out_dir} holds the DICOM series {case.name}; write the DICOM SEG elsewhere"
            )


def _check_run_outputs(cases: list[Case], out_dir: Path, options: PredictOptions, inputs: set) -> None:
    """The cohort table: never an input, never a case's output name; an existing one needs
    `overwrite`, or `resume` when batseg wrote it (`batseg.cohort.is_own_table`)."""
    names = {
        path.name.casefold(): case.name
        for case in cases for path in case_output_paths(case, out_dir, options, every_kind=True).values()
    }
    for path in run_output_paths(out_dir, options).values():
        if path.resolve() in inputs or _file_id(path) in inputs:
            raise BATsegError(f"output {path} would replace an input; choose another output folder")
        if path.name.casefold() in names:
            raise BATsegError(f"input {names[path.name.casefold()]} would write {path.name}, the cohort table; rename it")
        if path.is_dir():
            raise BATsegError(f"output {path} is a folder: move it away or choose another output folder")
        if os.path.lexists(path) and not options.overwrite and not (options.resume and is_own_table(path)):
            raise BATsegError(
                f"output {path} already exists: pass --overwrite, --continue (to resume the run that wrote it) "
                "or choose another output folder"
            )
        check_can_write(path, True)


def _check_case_name(case: Case) -> None:
    """A case name must give visible, non-empty file names (`-i .` once gave ".nii.gz")."""
    if not case.name or case.name.startswith("."):
        raise BATsegError(
            f"input {case.path} gives the case name {case.name!r}, which would write hidden output files "
            "(such as .nii.gz); rename it or give it by its own name"
        )


def _check_no_shared_names(cases: list[Case], out_dir: Path) -> None:
    """Refuse two cases whose output sets share a file name (compared as on a case-insensitive disk).

    Every kind is compared, asked for or not: case `a`'s probability map and the labels of case
    `a.probabilities` are one file, and an --overwrite run would remove one as the other's stale output.
    """
    owners: dict[str, tuple[str, str]] = {}
    for case in cases:
        for kind, path in output_paths(case.name, out_dir, PredictOptions(), every_kind=True, dicom=True).items():
            key = path.name.casefold()  # macOS and Windows disks do not tell A.nii.gz from a.nii.gz
            other = owners.setdefault(key, (case.name, kind))
            if other[0] != case.name:
                raise BATsegError(
                    f"inputs {other[0]} and {case.name} would both write {path.name} (the {other[1]} of one, the "
                    f"{kind} of the other); rename one of them"
                )


def _input_files(cases: list[Case]) -> set[Path | tuple[int, int]]:
    """Every input file, by resolved path and by (device, inode): the same file under any link or letter case."""
    files = [case.path for case in cases if case.kind == "file"]
    files += [Path(name) for case in cases for name in case.dicom_files]
    identities = {identity for identity in map(_file_id, files) if identity is not None}
    return identities | {path.resolve() for path in files}


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file; None when it does not exist or its file system has no inodes."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if stat.st_ino else None  # FAT on Windows reports inode 0 for all


def tumour_box(labels: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """The bounding box of the tumour voxels grown by `margin` (clipped to the array), or None."""
    axes = []
    for axis in range(labels.ndim):
        other = tuple(a for a in range(labels.ndim) if a != axis)
        present = np.flatnonzero(labels.any(axis=other))
        if present.size == 0:
            return None
        axes.append(slice(max(0, present[0] - margin), min(labels.shape[axis], present[-1] + 1 + margin)))
    return tuple(axes)


def postprocess_labels(labels: sitk.Image, probabilities: np.ndarray | None, options: PredictOptions,
                       volume: np.ndarray | None = None, cord_signal: float | None = None) -> sitk.Image:
    """`batseg.postprocess` on the tumour bounding box grown by one background voxel; `volume` (the
    scan's array) and `cord_signal` (`batseg.enhancement.cord_reference`) serve the minimum enhancement.

    Equivalent to postprocessing the whole map (a hole lies inside its class's box; the grown
    box's rim is background connected to the outside, as the crop border is for hole filling;
    lesions and their types are local), and much faster when the lesions are small.
    """
    array = sitk.GetArrayFromImage(labels)
    box = tumour_box(array)
    if box is not None:
        crop_probabilities = None if probabilities is None else probabilities[(slice(None), *box)]
        array[box] = postprocess(
            array[box],
            labels.GetSpacing()[::-1],
            probabilities=crop_probabilities,
            fill_holes=options.postprocess,
            min_volume_mm3=options.min_volume_mm3 if options.postprocess else 0.0,
            one_type_per_lesion=options.one_type_per_lesion,
            min_tumour_probability=options.min_tumour_probability if options.postprocess else 0.0,
            min_enhancement=options.min_enhancement if options.postprocess else 0.0,
            volume=None if volume is None else volume[box],
            cord_signal=cord_signal,
        )
    image = sitk.GetImageFromArray(array.astype(np.uint8, copy=False))
    image.CopyInformation(labels)
    return image


def run_settings(options: PredictOptions, predictor: Predictor) -> dict[str, Any]:
    """The settings of this run as the report and the cohort table record them."""
    return {
        "postprocess": options.postprocess,
        "min_volume_mm3": float(options.min_volume_mm3) if options.postprocess else 0.0,
        "min_volume_from": options.min_volume_from if options.postprocess else "off (--no-postprocess)",
        "min_tumour_probability": float(options.min_tumour_probability) if options.postprocess else 0.0,
        "min_tumour_probability_from": options.min_probability_from if options.postprocess else "off (--no-postprocess)",
        "min_enhancement": float(options.min_enhancement) if options.postprocess else 0.0,
        "min_enhancement_from": options.min_enhancement_from if options.postprocess else "off (--no-postprocess)",
        "one_type_per_lesion": options.one_type_per_lesion,
        "one_type_per_lesion_from": options.one_type_from,
        "tta": options.tta,
        "crop_margin_mm": options.crop_margin_mm,
        "cord_locator": options.cord_locator,
        "tile": _tile_text(getattr(predictor, "tile_mode", "auto")),
        "backend": getattr(predictor, "backend_name", None),
        "device": getattr(predictor, "device", None),
        "batseg_version": __version__,
        "created": _now(),
    }


def _now() -> str:
    """The date and time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _tile_text(tile: Any) -> str:
    return tile if isinstance(tile, str) else ",".join(str(int(v)) for v in tile)


def model_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the report says of the model: name, version, weights sha256 (and its parent when derived)."""
    identity = {key: manifest.get(key) for key in ("name", "version", "weights_sha256")}
    if isinstance(manifest.get("derived_from"), dict):
        identity["derived_from"] = manifest["derived_from"]
    return identity


def segment_case(
    predictor: Predictor,
    case: Case,
    out_dir: Path,
    options: PredictOptions,
    progress: Progress,
    before_write: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run one case end to end; returns its result (outputs, timings, lesion count, warnings).

    `before_write()` is called once the results exist and before anything is written.
    """
    return _segment_case(predictor, case, out_dir, options, progress, before_write)[0]


def _segment_case(
    predictor: Predictor,
    case: Case,
    out_dir: Path,
    options: PredictOptions,
    progress: Progress,
    before_write: Callable[[], None] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`segment_case`, also returning the case's lesion report."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    settings = {**(run_settings(options, predictor) if settings is None else settings), "created": _now()}

    def stage(name: str):
        return _TimedStage(progress, name, timings)

    with stage("read"):
        image = read_image(case, lambda info: predictor.check_memory(info, case.name, options.save_field))
        reason = label_map_reason(image)
        if reason:
            raise NotAScan(f"{case.path.name if case.kind == 'file' else case.name} is {reason}; give the MRI scan")
    facts = acquisition.of_case(case)
    with stage("locate cord"):
        case_cord = find_case_cord(case, image, options.cord_masks, options.cord_locator, facts)
    cord = case_cord.mask
    crop = {} if cord is None or options.crop_margin_mm is None else {"roi": cord, "crop_margin_mm": options.crop_margin_mm}
    prediction = predictor.predict(image, tta=options.tta, probabilities=True, field=options.save_field, **crop)
    timings.update(prediction.timings)
    # Contrast from the metadata, geometry from the header: both say when the input is not what
    # the model was trained on (sagittal T1 Gd slices covering the cord in context).
    warnings = (prediction.warnings + [w for w in [acquisition.contrast_warning(facts)] if w] + geometry_warnings(image)
                + case_cord.warnings)
    with stage("postprocess"):
        volume = sitk.GetArrayViewFromImage(image)
        # The cord's own signal, away from every raw lesion: the reference of each lesion's enhancement.
        cord_signal = cord_reference(volume, cord, sitk.GetArrayViewFromImage(prediction.labels) > 0)
        labels = postprocess_labels(prediction.labels, prediction.probabilities, options, volume, cord_signal)
    if options.postprocess and options.min_enhancement > 0 and cord_signal is None:
        warnings.append(UNJUDGED_ENHANCEMENT.format(least=options.min_enhancement))
    model = model_identity(predictor.manifest)
    with stage("report"):
        report = lesion_report(labels, prediction.probabilities, case.name, cord_mask=cord, volume=volume,
                               cord_signal=cord_signal)
        report["source"] = str(case.path)
        report["disclaimer"] = predictor.disclaimer  # what this model was trained on
        report["model"] = model
        report["settings"] = settings
        report.update(case_cord.report_fields())
        report["acquisition"] = facts.as_dict()  # what the scanner metadata says of the contrast
        report["warnings"] = warnings
    paths = case_output_paths(case, out_dir, options)
    files: list[tuple] = [(paths["labels"], image_writer(labels), image_suffix(paths["labels"]))]
    if options.save_probabilities:
        files.append((paths["probabilities"], image_writer(vector_image(prediction.probabilities, image)), image_suffix(paths["probabilities"])))
    if options.save_field:
        files.append((paths["field"], image_writer(vector_image(prediction.field, image)), image_suffix(paths["field"])))
    if "qc" in paths:
        from batseg.qc_picture import qc_writer

        with stage("qc picture"):
            files.append((paths["qc"], qc_writer(image, labels, report, model, predictor.disclaimer), ".png"))
    if "dicom_seg" in paths:
        from batseg.dicom_seg import build_segmentation, seg_writer, series_slices

        with stage("dicom seg"):
            source_files, gap = series_slices(case)
            segmentation = build_segmentation(
                sitk.GetArrayViewFromImage(labels), source_files, case.name, model, settings, gap,
            )
            files.append((paths["dicom_seg"], seg_writer(segmentation), ".dcm"))
    report["processing_seconds"] = round(time.perf_counter() - start, 3)
    files += report_files(report, paths["report_json"], paths["report_csv"])
    if before_write is not None:
        before_write()
    with stage("write"):
        write_all_or_nothing(files, options.overwrite, obsolete=stale_outputs(case.name, out_dir, options, case.kind == "dicom"))
    timings["total"] = time.perf_counter() - start
    result = {
        "case": case.name,
        "input": str(case.path),
        "outputs": {kind: str(path) for kind, path in paths.items()},
        "lesions": report["lesion_count"],
        "total_volume_cm3": report["total_volume_cm3"],
        "timings": {name: round(seconds, 4) for name, seconds in timings.items()},
        "peak_memory_mb": round(peak_resident_bytes() / 1024**2, 1),
        "warnings": warnings,
        "details": prediction.details,
    }
    return result, report


@dataclass
class BatchOutcome:
    """What a batch did: the failed, skipped and resumed cases, and the cohort table's rows."""

    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    segmented: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def segment_cases(
    predictor: Predictor,
    cases: list[Case],
    out_dir: Path,
    options: PredictOptions,
    progress: Progress,
    on_result: Callable[[dict[str, Any]], None],
    before_write: Callable[[], None] | None = None,
    resumed: dict[str, dict[str, Any]] | None = None,
    skipped: list[Skipped] = (),
) -> BatchOutcome:
    """`segment_case` for every case not in `resumed`, `on_result` for each success.

    A single case's error is raised (as a BATsegError where it is the user's or the machine's,
    unchanged where it is a bug). In a batch each failure is one error line naming the case and
    the next case runs: a bad image, exhausted memory or a bug in one case says nothing about
    the others; a label map or mask is skipped with a note. KeyboardInterrupt (Ctrl-C, SIGTERM)
    is no failure and stops the batch. Before each case of a batch, "case i/N" and the time left.
    `resumed`: complete cases of an earlier run (name -> report), not segmented again;
    `skipped`: inputs left out while listing them (label maps by name). Both join the cohort rows.
    """
    resumed = resumed or {}
    outcome = BatchOutcome()
    settings = run_settings(options, predictor)
    todo = [case for case in cases if case.name not in resumed]
    if resumed:
        progress.log(f"--continue: {len(resumed)} of {len(cases)} cases already complete in {out_dir}, not segmented again")
    seconds: list[float] = []
    number = 0
    for case in cases:
        if case.name in resumed:
            outcome.resumed.append(case.name)
            outcome.rows.append(row_from_report(resumed[case.name], "resumed", resumed[case.name].get("processing_seconds")))
            continue
        number += 1
        if len(todo) > 1:
            _announce(progress, number, len(todo), case.name, seconds)
        start = time.perf_counter()
        try:
            result, report = _segment_case(predictor, case, out_dir, options, progress, before_write, settings)
        except NotAScan as exc:
            if len(cases) == 1:
                raise
            progress.log(f"{case.name}: skipped, not segmented: {exc}")
            outcome.skipped.append(case.name)
            outcome.rows.append(row_without_report(case.name, str(case.path), "skipped", str(exc)))
            continue
        except Exception as exc:
            error = case_error(exc, case.name)
            if len(cases) == 1:
                if error is None:
                    raise
                raise error from None
            if error is None:  # a bug, yet one line too: it says nothing about the other cases
                error = BATsegError(f"unexpected {type(exc).__name__}: {exc} (a bug in batseg; please report it)")
            progress.error(f"{case.name}: {error}", case=case.name)
            outcome.failed.append(case.name)
            outcome.rows.append(row_without_report(case.name, str(case.path), "failed", str(error),
                                                   time.perf_counter() - start))
            seconds.append(time.perf_counter() - start)
            continue
        seconds.append(time.perf_counter() - start)
        outcome.segmented.append(case.name)
        outcome.rows.append(row_from_report(report, "segmented", result["timings"]["total"]))
        on_result(result)
    for entry in skipped:
        outcome.rows.append(row_without_report(entry.path.name, str(entry.path), "skipped", entry.reason))
    return outcome


def _announce(progress: Progress, number: int, total: int, name: str, seconds: list[float]) -> None:
    """"case i/N: NAME" before a case of a batch, with the time left once a case has run."""
    left = ""
    if seconds:
        remaining = sum(seconds) / len(seconds) * (total - number + 1)
        left = f" (about {_duration(remaining)} left)"
    message = f"case {number}/{total}: {name}{left}"
    if progress.mode == "json":
        progress.update("cases", number - 1, total)
    progress.log(message)


def _duration(seconds: float) -> str:
    """A rough duration for the time left: seconds, minutes, or hours and minutes."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def write_cohort(rows: list[dict[str, Any]], out_dir: Path, options: PredictOptions, run: dict[str, Any]) -> list[Path]:
    """Write the cohort table (CSV and JSON, all or nothing); [] without option `cohort`.

    An existing table is replaced with `overwrite`, or with `resume` when batseg wrote it
    (checked before any work by `check_outputs`).
    """
    paths = run_output_paths(out_dir, options)
    if not paths:
        return []
    replace = options.overwrite or (options.resume and all(
        is_own_table(path) for path in paths.values() if os.path.lexists(path)
    ))
    return write_all_or_nothing(cohort_files(rows, run, paths["cohort_csv"], paths["cohort_json"]), replace)


def case_error(exc: Exception, name: str) -> BATsegError | None:
    """The one-line error of case `name`'s failure; None for an unexpected error (a bug)."""
    if isinstance(exc, BATsegError):
        return exc
    if isinstance(exc, MemoryError) or is_out_of_memory(exc):
        # The memory check before reading is an estimate: an allocation can still fail.
        return BATsegError(
            f"not enough memory to segment {name}; crop the image to the spine, close other programs "
            "or use a larger machine"
        )
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return BATsegError(
            f"cannot access{where}: {exc.strerror or exc}; check the path, its permissions and the free disk space"
        )
    return None


class _TimedStage:
    """`progress.stage(name)` that also records the seconds in `timings`."""

    def __init__(self, progress: Progress, name: str, timings: dict[str, float]) -> None:
        self._context = progress.stage(name)
        self._name = name
        self._timings = timings

    def __enter__(self) -> None:
        self._start = time.perf_counter()
        self._context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)
        self._timings[self._name] = time.perf_counter() - self._start
