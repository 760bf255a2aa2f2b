"""One case from file to files: read, predict, postprocess, report, write.

Used by `batseg predict` (and, through it, by the Slicer module and `batseg benchmark`).
Outputs for a case named CASE (the input file name without its extension, or the DICOM
folder's name), all written atomically into OUT_DIR:
- CASE.nii.gz: uint8 label map 0-4 on the input's exact grid;
- CASE.report.json and CASE.report.csv: the per-lesion report (`batseg.report`); the JSON also
  holds the run's warnings and the input's acquisition facts (`batseg.acquisition`: a scan whose
  metadata says it is not T1, e.g. a T2 series loaded by mistake, gets a warning);
- CASE.probabilities.nii.gz (option): 4-component float32 image, tumour classes 1-4;
- CASE.field.nii.gz (option): the distance-field head's output, one component per channel.

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
goes on; the command then exits with status 2 after a summary line.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk

from batseg import acquisition
from batseg.atomic_files import check_can_write, write_all_or_nothing
from batseg.errors import BATsegError
from batseg.field_of_view import geometry_warnings
from batseg.inference.backends import is_out_of_memory
from batseg.inference.memory import peak_resident_bytes
from batseg.inference.predictor import Predictor
from batseg.io import Case, image_suffix, image_writer, read_image, vector_image
from batseg.postprocess import postprocess
from batseg.postprocess_settings import DEFAULT_MIN_VOLUME_MM3
from batseg.progress import Progress
from batseg.report import lesion_report, report_files

LABEL_SUFFIX = ".nii.gz"
# Outputs written only on request, by kind: each belongs to its case's set even when not asked for.
OPTIONAL_SUFFIXES = {"probabilities": ".probabilities.nii.gz", "field": ".field.nii.gz"}


@dataclass(frozen=True)
class PredictOptions:
    """What to compute and write for each case."""

    tta: bool = False
    postprocess: bool = True
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3
    one_type_per_lesion: bool = False
    save_probabilities: bool = False
    save_field: bool = False
    overwrite: bool = False


def output_paths(name: str, out_dir: Path, options: PredictOptions, every_kind: bool = False) -> dict[str, Path]:
    """The files a case will write, by kind; with `every_kind`, also the optional ones not asked for."""
    paths = {
        "labels": out_dir / f"{name}{LABEL_SUFFIX}",
        "report_json": out_dir / f"{name}.report.json",
        "report_csv": out_dir / f"{name}.report.csv",
    }
    wanted = {"probabilities": options.save_probabilities, "field": options.save_field}
    for kind, suffix in OPTIONAL_SUFFIXES.items():
        if wanted[kind] or every_kind:
            paths[kind] = out_dir / f"{name}{suffix}"
    return paths


def stale_outputs(name: str, out_dir: Path, options: PredictOptions) -> list[Path]:
    """Existing outputs of an earlier run of case `name` that this run does not write anew."""
    written = output_paths(name, out_dir, options)
    every = output_paths(name, out_dir, options, every_kind=True)
    return [path for kind, path in every.items() if kind not in written and os.path.lexists(path)]


def check_outputs(cases: list[Case], out_dir: Path, options: PredictOptions) -> None:
    """Refuse before any work when an output is hidden, shared, an input, a folder, or exists.

    An input is never overwritten, even with `overwrite`: a label map written over the image it
    came from would destroy the user's data. An output of an earlier run that this run would
    leave beside its new outputs exists as far as `overwrite` is concerned (module docstring).
    """
    for case in cases:
        _check_case_name(case)
    _check_no_shared_names(cases, out_dir)
    inputs = _input_files(cases)
    for case in cases:
        written = output_paths(case.name, out_dir, options)
        for kind, path in output_paths(case.name, out_dir, options, every_kind=True).items():
            if path.resolve() in inputs or _file_id(path) in inputs:
                raise BATsegError(f"output {path} would replace an input image; choose another output folder")
            if kind in written:
                check_can_write(path, options.overwrite)
            elif path.is_dir():
                raise BATsegError(f"output {path} is a folder: move it away or choose another output folder")
            elif os.path.lexists(path) and not options.overwrite:
                raise BATsegError(
                    f"output {path} exists from an earlier run and would not match this run's outputs; "
                    "pass --overwrite (it is then removed) or choose another output folder"
                )


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
        for kind, path in output_paths(case.name, out_dir, PredictOptions(), every_kind=True).items():
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


def postprocess_labels(labels: sitk.Image, probabilities: np.ndarray | None, options: PredictOptions) -> sitk.Image:
    """`batseg.postprocess` on the tumour bounding box grown by one background voxel.

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
        )
    image = sitk.GetImageFromArray(array.astype(np.uint8, copy=False))
    image.CopyInformation(labels)
    return image


def _write_all(outputs: dict[str, tuple[Any, Any]], overwrite: bool, stale: list[Path]) -> None:
    """Write every output of the case, all or nothing: a failure leaves earlier results intact.

    `stale` outputs of an earlier run are removed with the new set's writing (`overwrite` only).
    """
    files: list[tuple] = []
    for kind, (path, payload) in outputs.items():
        if kind == "report":
            files += report_files(payload, *path)
        else:
            files.append((path, image_writer(payload), image_suffix(path)))
    write_all_or_nothing(files, overwrite, obsolete=stale)


def segment_case(
    predictor: Predictor,
    case: Case,
    out_dir: Path,
    options: PredictOptions,
    progress: Progress,
    before_write: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run one case end to end; returns its result (outputs, timings, lesion count, warnings).

    `before_write()` is called once the results exist and before anything is written (the
    command prints its disclaimer there, so a failed case prints nothing but its error).
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str):
        return _TimedStage(progress, name, timings)

    with stage("read"):
        image = read_image(case, lambda info: predictor.check_memory(info, case.name, options.save_field))
    facts = acquisition.of_case(case)
    prediction = predictor.predict(image, tta=options.tta, probabilities=True, field=options.save_field)
    timings.update(prediction.timings)
    # Contrast from the metadata, geometry from the header: both say when the input is not what
    # the model was trained on (sagittal T1 Gd slices covering the cord in context).
    warnings = prediction.warnings + [w for w in [acquisition.contrast_warning(facts)] if w] + geometry_warnings(image)
    with stage("postprocess"):
        labels = postprocess_labels(prediction.labels, prediction.probabilities, options)
    with stage("report"):
        report = lesion_report(labels, prediction.probabilities, case.name)
        report["source"] = str(case.path)
        report["disclaimer"] = predictor.disclaimer  # what this model was trained on
        report["model"] = {
            "name": predictor.manifest.get("name"),
            "version": predictor.manifest.get("version"),
            "weights_sha256": predictor.manifest.get("weights_sha256"),
        }
        report["acquisition"] = facts.as_dict()  # what the scanner metadata says of the contrast
        report["warnings"] = warnings
    paths = output_paths(case.name, out_dir, options)
    outputs: dict[str, tuple[Any, Any]] = {"labels": (paths["labels"], labels)}
    if options.save_probabilities:
        outputs["probabilities"] = (paths["probabilities"], vector_image(prediction.probabilities, image))
    if options.save_field:
        outputs["field"] = (paths["field"], vector_image(prediction.field, image))
    outputs["report"] = ((paths["report_json"], paths["report_csv"]), report)
    if before_write is not None:
        before_write()
    with stage("write"):
        _write_all(outputs, options.overwrite, stale_outputs(case.name, out_dir, options))
    timings["total"] = time.perf_counter() - start
    return {
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


def segment_cases(
    predictor: Predictor,
    cases: list[Case],
    out_dir: Path,
    options: PredictOptions,
    progress: Progress,
    on_result: Callable[[dict[str, Any]], None],
    before_write: Callable[[], None] | None = None,
) -> list[str]:
    """`segment_case` for every case, `on_result` for each success; returns the failed case names.

    A single case's error is raised (as a BATsegError where it is the user's or the machine's,
    unchanged where it is a bug). In a batch each failure is one error line naming the case and
    the next case runs: a bad image, exhausted memory or a bug in one case says nothing about
    the others. KeyboardInterrupt (Ctrl-C, SIGTERM) is no failure and stops the batch.
    """
    failed = []
    for case in cases:
        try:
            result = segment_case(predictor, case, out_dir, options, progress, before_write=before_write)
        except Exception as exc:
            error = case_error(exc, case.name)
            if len(cases) == 1:
                if error is None:
                    raise
                raise error from None
            if error is None:  # a bug, yet one line too: it says nothing about the other cases
                error = BATsegError(f"unexpected {type(exc).__name__}: {exc} (a bug in batseg; please report it)")
            progress.error(f"{case.name}: {error}", case=case.name)
            failed.append(case.name)
            continue
        on_result(result)
    return failed


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
