"""Evaluation of predicted label files against ground-truth label files (`batseg evaluate`).

Matches cases by name, checks that each pair shares one voxel grid, scores every case with
`batseg.metrics`, and renders the result as a text table, a JSON file and a PNG chart.

Decisions:
- Case names follow nnU-Net: `CASE.nii.gz` in both folders (the names `batseg predict` and
  nnU-Net's predictor write); the other formats of `batseg.io.IMAGE_SUFFIXES` are read too.
  A label file's case is its name without the image suffix (`label_case_name`): nnU-Net's
  channel suffix `_0000` is dropped from image names only, so labelsTr/phantom_0000.nii.gz is
  case "phantom_0000", as `batseg predict` names the prediction of imagesTr/phantom_0000_0000.nii.gz.
  Files of other names (probability maps, reports) are not label files and are ignored unless
  their name matches a case on the other side.
- The JSON and PNG outputs are never written over an input label file, nor into an input
  folder under a label file's name (`check_not_input`), with or without --overwrite.
- Only cases present on both sides are scored, as nnU-Net does for one fold's predictions
  against a full labelsTr folder; unmatched names are listed in the results and logged.
  No common case at all is an error.
- Geometry must match: same size, spacing within 0.01%, origin within 1% of the smallest
  voxel, direction cosines within 1e-4. Metrics on two different grids would be meaningless,
  so a mismatch is an error naming the case, never a silent resampling.
- NIfTI files are checked for truncation first (see `check_nifti_complete`).
- Label files stored as floating point (some tools do) are accepted when every value is a
  whole number 0-4.
- The model: a label map carries no model name, so it is read from the lesion reports
  `batseg predict` writes beside its label maps (CASE.report.json, "model"): one model when all
  reports name the same, "several models" otherwise, "unknown" without reports; `--model-name`
  names it for predictions of another tool. The JSON ("model") and the chart's title carry it.
- The chart (`save_chart`): per-class Dice and HD95 (bars: means; dots: the cases), the type
  confusion matrix, the detection figures (true positive and false positive detection rates,
  patient-level sensitivity, healthy cases with a false lesion, type accuracy, each with its
  counts), and the per-case spread of the whole-tumour Dice, with the model's name, the number
  of cases and the research-use line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from batseg.atomic_files import write_atomically, write_text_atomically
from batseg.errors import BATsegError
from batseg.image_headers import nifti_data_problem
from batseg.io import IMAGE_SUFFIXES, is_image_file
from batseg.labels import TUMOUR_CLASSES
from batseg.lesions import check_label_map
from batseg.metrics import DETECTION_MIN_OVERLAP_MM3, HD95_MISSING_MM, TYPE_KEYS, aggregate, evaluate_case
from batseg.progress import Progress
from batseg.report import DISCLAIMER


def label_case_name(path: str | os.PathLike) -> str:
    """The case of a label file: its name without the image suffix (CASE.nii.gz -> CASE)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_not_input(output: str | os.PathLike, option: str, *inputs: str | os.PathLike) -> None:
    """Refuse an output that is one of the input label files or would be taken for one.

    `inputs` are the --pred and --gt files or folders. An output directly inside an input
    folder with a label file's suffix would replace a label file, or be read as one next time.
    """
    target = Path(output).expanduser()
    for given in inputs:
        source = Path(given).expanduser()
        if source.is_file() and (_same_file(target, source) or target.absolute() == source.absolute()):
            raise BATsegError(f"{option} {target} is an input label file; write the output to another file")
        if source.is_dir() and target.absolute().parent.resolve() == source.resolve():
            if target.name.lower().endswith(IMAGE_SUFFIXES):
                raise BATsegError(
                    f"{option} {target} would replace or add a label file in the input folder {source}; "
                    "write the output elsewhere"
                )


def _same_file(a: Path, b: Path) -> bool:
    """True when both paths exist and are one file (links and letter case included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _index_folder(folder: Path, role: str) -> dict[str, Path]:
    """Case name -> file for every label file directly inside `folder`."""
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        name = label_case_name(path)
        if name in cases:
            raise BATsegError(
                f"{role} folder {folder} holds two files for case {name!r} ({cases[name].name}, {path.name}): keep one"
            )
        cases[name] = path
    return cases


def _index(path: Path, role: str) -> dict[str, Path]:
    """Case name -> file for a folder of label files or a single label file."""
    if not path.exists():
        raise BATsegError(f"{role} {path} does not exist: give an existing file or folder")
    if path.is_dir():
        return _index_folder(path, role)
    if not is_image_file(path):
        raise BATsegError(
            f"{role} {path} is not a label file ({', '.join(IMAGE_SUFFIXES)}): give a label file or folder"
        )
    return {label_case_name(path): path}


def match_cases(
    pred: str | os.PathLike, gt: str | os.PathLike
) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(case, prediction file, ground-truth file) for every common case, plus unmatched names.

    Two single files are paired whatever their names (the ground truth's name is the case).
    """
    pred, gt = Path(pred), Path(gt)
    pred_cases, gt_cases = _index(pred, "prediction"), _index(gt, "ground truth")
    if pred.is_file() and gt.is_file():
        name = next(iter(gt_cases))
        return [(name, pred, gt)], [], []
    common = sorted(set(pred_cases) & set(gt_cases))
    if not common:
        raise BATsegError(
            f"no case name is common to {pred} ({len(pred_cases)} label files) and {gt} ({len(gt_cases)}): "
            "name both CASE.nii.gz"
        )
    pairs = [(name, pred_cases[name], gt_cases[name]) for name in common]
    return pairs, sorted(set(pred_cases) - set(gt_cases)), sorted(set(gt_cases) - set(pred_cases))


def check_nifti_complete(path: Path) -> None:
    """A one-line error when a NIfTI file is truncated, its gzip stream corrupt, or it holds NaN.

    ITK's NIfTI reader fills a short data block with zeros without complaint (a truncated
    .nii.gz reads as a partly empty label map) and never reaches the gzip trailer (flipped
    bytes inside the stream change labels silently), which would corrupt the scores: the file
    gets the check every input image gets (`image_headers.nifti_data_problem`).
    """
    problem = nifti_data_problem(path, f"label file {path}", must_be_nifti=True)
    if problem:
        raise BATsegError(problem)


def read_label_file(path: Path) -> tuple[sitk.Image, np.ndarray]:
    """The image and its (z, y, x) integer label array; a one-line error if unusable."""
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_complete(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        # SimpleITK's message ends with the reason, after a line naming its own source file.
        reason = str(exc).strip().splitlines()[-1].replace("sitk::ERROR:", "").strip() if str(exc).strip() else ""
        raise BATsegError(
            f"cannot read label file {path}: {reason or 'unknown reason'}; check that it is a label image"
        ) from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise BATsegError(f"label file {path} is not a 3-D single-channel image: give a label map")
    array = sitk.GetArrayFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise BATsegError(f"label file {path} holds non-integer values: give a label map with values 0-4")
        array = array.astype(np.int16)
    check_label_map(array, f"label file {path}")
    return image, array


def check_same_geometry(pred: sitk.Image, gt: sitk.Image, case: str) -> None:
    """A one-line error when the prediction is not on the ground truth's voxel grid."""
    checks = (
        ("size", pred.GetSize(), gt.GetSize(), 0.0, 0.0),
        ("spacing", pred.GetSpacing(), gt.GetSpacing(), 1e-4, 0.0),
        ("origin", pred.GetOrigin(), gt.GetOrigin(), 0.0, 0.01 * min(gt.GetSpacing())),
        ("direction", pred.GetDirection(), gt.GetDirection(), 0.0, 1e-4),
    )
    for what, pred_value, gt_value, rtol, atol in checks:
        if not np.allclose(pred_value, gt_value, rtol=rtol, atol=atol):
            raise BATsegError(
                f"case {case}: prediction and ground truth differ in {what} "
                f"({_short(pred_value)} vs {_short(gt_value)}): resample the prediction onto the ground-truth grid"
            )


def _short(values: tuple) -> str:
    """Geometry values rounded for an error message."""
    return "(" + ", ".join(f"{v:g}" if isinstance(v, int) else f"{v:.4g}" for v in values) + ")"


def model_of_predictions(pred_files: list[Path]) -> dict[str, Any]:
    """The model that made the predictions, from the CASE.report.json beside each label file.

    {"name", "version", "weights_sha256", "source"}: source "reports" (one model), "several
    models" (their names joined) or "unknown" (no readable report).
    """
    models: dict[tuple, dict[str, Any]] = {}
    for path in pred_files:
        report_path = path.parent / f"{label_case_name(path)}.report.json"
        try:
            model = json.loads(report_path.read_text(encoding="utf-8")).get("model") or {}
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            continue
        if isinstance(model, dict) and model.get("name"):
            key = (model.get("name"), model.get("version"), model.get("weights_sha256"))
            models.setdefault(key, {"name": key[0], "version": key[1], "weights_sha256": key[2]})
    if len(models) == 1:
        return {**next(iter(models.values())), "source": "reports"}
    if models:
        names = ", ".join(sorted(f"{m['name']} {m['version']}" for m in models.values()))
        return {"name": f"several models ({names})", "version": None, "weights_sha256": None, "source": "several models"}
    return {"name": None, "version": None, "weights_sha256": None, "source": "unknown"}


def model_label(model: dict[str, Any]) -> str:
    """The model as the table and the chart name it."""
    if not model.get("name"):
        return "model unknown (no CASE.report.json beside the predictions; --model-name names it)"
    return f"model {model['name']}" + (f" {model['version']}" if model.get("version") else "")


def evaluate_paths(
    pred: str | os.PathLike,
    gt: str | os.PathLike,
    progress: Progress | None = None,
    min_overlap_mm3: float = DETECTION_MIN_OVERLAP_MM3,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Score every common case of `pred` against `gt` (files or folders) and aggregate.

    `model_name` names the model that made the predictions (default: read from their reports).
    """
    progress = progress or Progress("quiet")
    pairs, pred_only, gt_only = match_cases(pred, gt)
    if pred_only:
        progress.log(f"{len(pred_only)} prediction(s) without ground truth ignored: {', '.join(pred_only[:5])}")
    if gt_only:
        progress.log(
            f"{len(gt_only)} ground-truth case(s) without prediction not scored: {', '.join(gt_only[:5])}"
        )
    cases: dict[str, Any] = {}
    with progress.stage("evaluate"):
        for done, (name, pred_path, gt_path) in enumerate(pairs, start=1):
            cases[name] = _evaluate_pair(name, pred_path, gt_path, min_overlap_mm3)
            progress.update("evaluate", done, len(pairs))
    model = (
        {"name": model_name, "version": None, "weights_sha256": None, "source": "--model-name"}
        if model_name else model_of_predictions([pred_path for _, pred_path, _ in pairs])
    )
    return {
        "disclaimer": DISCLAIMER,
        "model": model,
        "prediction": str(pred),
        "ground_truth": str(gt),
        "min_overlap_mm3": float(min_overlap_mm3),
        "hd95_missing_mm": HD95_MISSING_MM,
        "unmatched_predictions": pred_only,
        "unmatched_ground_truth": gt_only,
        "aggregate": aggregate(list(cases.values())),
        "cases": cases,
    }


def _evaluate_pair(name: str, pred_path: Path, gt_path: Path, min_overlap_mm3: float) -> dict[str, Any]:
    """The metrics of one case, with the files and spacing it was scored on."""
    pred_image, pred_array = read_label_file(pred_path)
    gt_image, gt_array = read_label_file(gt_path)
    check_same_geometry(pred_image, gt_image, name)
    spacing = tuple(reversed(gt_image.GetSpacing()))  # array (z, y, x) order
    result = evaluate_case(pred_array, gt_array, spacing, min_overlap_mm3=min_overlap_mm3)
    return {
        "prediction_file": str(pred_path),
        "ground_truth_file": str(gt_path),
        "spacing_mm": list(gt_image.GetSpacing()),
        **result,
    }


def _percent(value: float | None) -> str:
    """A fraction as a percentage, '-' when undefined."""
    return "-" if value is None else f"{100.0 * value:.1f}"


def _number(value: float | None, digits: int = 1) -> str:
    """A number with fixed decimals, '-' when undefined."""
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: dict[str, Any]) -> str:
    """The aggregate results as a plain-text table for the terminal."""
    summary = results["aggregate"]
    lines = [f"{'class':<20}{'Dice %':>9}{'HD95 mm':>10}{'cases':>7}"]
    for tumour in TUMOUR_CLASSES:
        row = summary["per_class"][tumour.key]
        lines.append(_score_line(tumour.name, row["dice_mean"], row["hd95_mean"], row["n_cases"]))
    mean = summary["mean_over_classes"]
    lines.append(_score_line("mean over classes", mean["dice"], mean["hd95"], mean["n_classes"]))
    whole = summary["tumour"]
    lines.append(_score_line("tumour (any type)", whole["dice_mean"], whole["hd95_mean"], whole["n_cases"]))
    lines += ["", *_detection_lines(summary, results["min_overlap_mm3"])]
    lines += ["", *_confusion_lines(summary["detection"]), ""]
    if "model" in results:
        lines.append(f"Predictions of {model_label(results['model'])}")
    lines.append(results["disclaimer"])
    return "\n".join(lines)


def _score_line(name: str, dice: float | None, hd95: float | None, count: int) -> str:
    """One row of the score table: name, Dice %, HD95 mm, number of cases (or classes)."""
    return f"{name:<20}{_percent(dice):>9}{_number(hd95):>10}{count:>7}"


def _detection_lines(summary: dict[str, Any], min_overlap_mm3: float) -> list[str]:
    """Detection, volume and patient-level lines of the table."""
    d = summary["detection"]
    return [
        f"Lesion detection (overlap >= {min_overlap_mm3:g} mm3): "
        f"{d['detected_lesions']}/{d['true_lesions']} true lesions detected "
        f"(TPDR {_percent(d['true_positive_detection_rate'])}%), "
        f"{d['false_positive_lesions']}/{d['predicted_lesions']} predicted lesions false positive "
        f"(FPDR {_percent(d['false_positive_detection_rate'])}%)",
        f"Voxel precision {_percent(d['voxel_precision_mean'])}%, recall {_percent(d['voxel_recall_mean'])}%; "
        f"relative volume difference {_percent(d['relative_volume_difference_mean'])}% "
        f"(absolute {_percent(d['absolute_volume_difference_mean'])}%)",
        f"Patient-level sensitivity: {_percent(summary['patient_sensitivity'])}% "
        f"of {summary['patients_with_tumour']} "
        f"patients with tumour; healthy cases with a predicted lesion: "
        f"{summary['healthy_cases_with_prediction']}/{summary['healthy_cases']}",
        f"Lesion type accuracy: {d['types_correct']}/{d['types_assessed']} detected lesions "
        f"({_percent(d['type_accuracy'])}%)",
    ]


def _confusion_lines(detection: dict[str, Any]) -> list[str]:
    """The 4x4 type confusion matrix as text (rows true type, columns predicted type)."""
    width = max(len(key) for key in TYPE_KEYS) + 2
    lines = [
        "Type confusion (rows: true type, columns: predicted type)",
        " " * width + "".join(f"{k:>{width}}" for k in TYPE_KEYS),
    ]
    for key, row in zip(TYPE_KEYS, detection["type_confusion"]):
        lines.append(f"{key:<{width}}" + "".join(f"{n:>{width}}" for n in row))
    return lines


def save_results_json(results: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the full results (aggregate and every case) as JSON, atomically."""
    return write_text_atomically(path, json.dumps(results, indent=2) + "\n", overwrite)


def save_chart(results: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """PNG: per-class Dice and HD95 with the cases' spread, type confusion, detection rates and
    the per-case whole-tumour Dice, titled with the model (module docstring).

    Drawn on a bare matplotlib Figure with the Agg canvas, without pyplot: no display is
    needed and no global backend is switched (the CLI may run inside Slicer's process tree).
    """
    figure = chart_figure(results)
    return write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110), overwrite)


def chart_figure(results: dict[str, Any]) -> Any:
    """The chart of `save_chart` as a matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 9.6))
    FigureCanvasAgg(figure)
    _draw_chart(figure, results)
    return figure


def _draw_chart(figure: Any, results: dict[str, Any]) -> None:
    """The panels of `save_chart`."""
    summary = results["aggregate"]
    grid = figure.add_gridspec(2, 3)
    dice_axes, hd95_axes, confusion_axes = (figure.add_subplot(grid[0, i]) for i in range(3))
    detection_axes = figure.add_subplot(grid[1, 0])
    spread_axes = figure.add_subplot(grid[1, 1:])
    names = list(TYPE_KEYS)
    colours = [c.color for c in TUMOUR_CLASSES]
    rows = [summary["per_class"][c.key] for c in TUMOUR_CLASSES]
    dices = [0.0 if r["dice_mean"] is None else 100.0 * r["dice_mean"] for r in rows]
    distances = [0.0 if r["hd95_mean"] is None else r["hd95_mean"] for r in rows]
    per_case = _per_case_class_scores(results.get("cases", {}))
    dice_axes.bar(names, dices, color=colours, alpha=0.8)
    dice_axes.set(title="Dice per class (%): mean, and each case", ylim=(0, 110))
    hd95_axes.bar(names, distances, color=colours, alpha=0.8)
    top = max([*distances, *(v for values in per_case["hd95"].values() for v in values), 1.0])
    hd95_axes.set(title="HD95 per class (mm): mean, and each case", ylim=(0, top * 1.2))
    for axes, values, key, scale in ((dice_axes, dices, "dice", 100.0), (hd95_axes, distances, "hd95", 1.0)):
        for position, (value, row, tumour) in enumerate(zip(values, rows, TUMOUR_CLASSES)):
            points = [scale * v for v in per_case[key][tumour.key]]
            if points:
                offsets = np.linspace(-0.25, 0.25, len(points)) if len(points) > 1 else [0.0]
                axes.scatter(position + np.asarray(offsets), points, s=12, color="black", zorder=3)
            label = "no case" if row["n_cases"] == 0 else f"{value:.1f}\nn={row['n_cases']}"
            axes.annotate(label, (position, value), ha="center", va="bottom", fontsize=8,
                          xytext=(14, 0), textcoords="offset points")
        axes.tick_params(axis="x", labelrotation=30)
    _draw_confusion(confusion_axes, np.asarray(summary["detection"]["type_confusion"]))
    _draw_detection(detection_axes, summary, results.get("min_overlap_mm3", DETECTION_MIN_OVERLAP_MM3))
    _draw_spread(spread_axes, results.get("cases", {}))
    model = model_label(results.get("model") or {})
    figure.suptitle(f"{model}: {summary['n_cases']} case(s)\n{results.get('disclaimer', DISCLAIMER)}", fontsize=10)
    figure.tight_layout()


def _per_case_class_scores(cases: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Each case's Dice and HD95 per class present in its truth."""
    scores: dict[str, dict[str, list[float]]] = {"dice": {k: [] for k in TYPE_KEYS}, "hd95": {k: [] for k in TYPE_KEYS}}
    for case in cases.values():
        for key, values in (case.get("classes") or {}).items():
            for metric in ("dice", "hd95"):
                if values.get(metric) is not None and key in scores[metric]:
                    scores[metric][key].append(float(values[metric]))
    return scores


def _draw_detection(axes: Any, summary: dict[str, Any], min_overlap_mm3: float) -> None:
    """Lesion and patient detection rates as horizontal bars, each with its counts."""
    d = summary["detection"]
    healthy_rate = _ratio(summary["healthy_cases_with_prediction"], summary["healthy_cases"])
    bars = [
        ("true lesions found (TPDR)", d["true_positive_detection_rate"], f"{d['detected_lesions']}/{d['true_lesions']}", "tab:green"),
        ("reported lesions false (FPDR)", d["false_positive_detection_rate"],
         f"{d['false_positive_lesions']}/{d['predicted_lesions']}", "tab:red"),
        ("patients with tumour found", summary["patient_sensitivity"], f"of {summary['patients_with_tumour']}", "tab:green"),
        ("healthy cases with a lesion", healthy_rate,
         f"{summary['healthy_cases_with_prediction']}/{summary['healthy_cases']}", "tab:red"),
        ("type right (found lesions)", d["type_accuracy"], f"{d['types_correct']}/{d['types_assessed']}", "tab:blue"),
    ]
    labels = [label for label, *_ in bars]
    values = [0.0 if value is None else 100.0 * value for _, value, _, _ in bars]
    axes.barh(labels, values, color=[colour for *_, colour in bars])
    axes.invert_yaxis()
    axes.set(xlim=(0, 125), title=f"Detection (overlap >= {min_overlap_mm3:g} mm3), %")
    for position, (value, (_, raw, counts, _)) in enumerate(zip(values, bars)):
        text = "n/a" if raw is None else f"{value:.0f}% ({counts})"
        axes.text(value + 2, position, text, va="center", fontsize=8)
    axes.tick_params(axis="y", labelsize=8)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _draw_spread(axes: Any, cases: dict[str, Any]) -> None:
    """Whole-tumour Dice of every case with tumour, sorted, coloured by its true type, and the
    cases without tumour marked by whether a lesion was predicted."""
    scored = []
    for name, case in cases.items():
        tumour = case.get("tumour")
        if tumour is not None and tumour.get("dice") is not None:
            present = [k for k in TYPE_KEYS if k in (case.get("classes") or {})]
            scored.append((float(tumour["dice"]) * 100.0, name, present[0] if present else None))
    scored.sort()
    colours = {c.key: c.color for c in TUMOUR_CLASSES}
    if scored:
        axes.bar(range(len(scored)), [s for s, _, _ in scored], color=[colours.get(k, "grey") for _, _, k in scored])
        if len(scored) <= 40:
            axes.set_xticks(range(len(scored)), [n for _, n, _ in scored], rotation=60, ha="right", fontsize=7)
        else:
            axes.set_xticks([])
        values = np.asarray([s for s, _, _ in scored])
        axes.axhline(float(np.median(values)), color="black", linewidth=0.8, linestyle="--")
        axes.text(len(scored) - 0.5, float(np.median(values)) + 2, f"median {np.median(values):.1f}%",
                  ha="right", fontsize=8)
    healthy = [case for case in cases.values() if not case.get("has_tumour")]
    flagged = sum(1 for case in healthy if case.get("healthy_with_prediction"))
    extra = f"; {len(healthy)} case(s) without tumour, {flagged} with a false lesion" if healthy else ""
    axes.set(ylim=(0, 105), ylabel="Dice %",
             title=f"Whole-tumour Dice per case ({len(scored)} with tumour, colour: true type){extra}")


def _draw_confusion(axes: Any, confusion: np.ndarray) -> None:
    """Counts of true (rows) vs predicted (columns) lesion types, annotated."""
    axes.imshow(confusion, cmap="Blues")
    keys = list(TYPE_KEYS)
    axes.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    axes.set_yticks(range(len(keys)), keys)
    axes.set(title="Lesion type confusion", xlabel="predicted type", ylabel="true type")
    threshold = confusion.max() / 2 if confusion.max() else 1
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
