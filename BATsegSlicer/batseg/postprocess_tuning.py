"""Choosing a model's postprocessing on validation cases (`batseg tune-postprocess`).

The minimum volume below which postprocessing drops a lesion trades missed small lesions
against false alarms, and whether each lesion should get a single tumour type depends on how
often the model splits one lesion between types; where the balance lies depends on the model.
Likewise the least mean tumour probability a lesion needs to be kept (`batseg.postprocess`):
false lesions a network is unsure of go, at the cost of true lesions it is unsure of; and the
least enhancement (a lesion's median signal over the cord's, `batseg.enhancement`): false lesions
that are the cord's own signal go, at the cost of lesions that do not enhance.
This module picks all four on labelled validation cases (never the test cases) and the choice is
stored in the model file's manifest ("postprocessing"), where `batseg predict` and the Slicer
module read it.

Decisions:
- Each case is predicted once, without postprocessing, on its own grid (labels and class
  probabilities), along the path `batseg predict` takes with the same cord flags (the cascade
  crop by default; the command's `predict_raw`), which the manifest records, with the cord's
  signal where a cord was found; every candidate (a minimum volume, a minimum tumour probability,
  a minimum enhancement, with and without one type per lesion) is then applied to that raw label
  map exactly as `batseg predict` applies it (hole filling per class, removal of smaller lesions
  in mm3, of lesions below the probability, of lesions below the enhancement, then the type
  decision) and scored with `batseg.metrics`. Settings that leave the same label map are scored once.
- Criterion: the mean of two figures, mean Dice over the tumour classes present and lesion
  detection F1 (recall: Lemay's true positive detection rate; precision: one minus the false
  positive detection rate; false lesions on healthy cases count). Dice alone hardly moves with
  the threshold, since small components carry few voxels; F1 alone ignores how well lesions are
  outlined. A figure that cannot be computed counts as 0.
- Ties (scores within 1e-6) go to the smaller volume: a small true nodule lost costs more
  than a speck kept, and a radiologist deletes a speck in seconds; then to the lower probability
  minimum and then the lower enhancement minimum (for the same reason); then to leaving the types
  as predicted (the simpler output).
- Candidates: 0 (keep every lesion) to 1000 mm3 (1 cm3), on a roughly logarithmic scale that
  includes the engine's default (20 mm3) and Lemay et al.'s 200 mm3. Probability minimums: 0
  (keep every lesion) and 0.5 to 0.9; above 0.9 the validation cases of model 0.10.0 lost most
  true lesions (`scripts/lesion_confidence.py`). Enhancement minimums: by default only 0 (keep
  every lesion); others on request (`--enhancement-candidates 0 1.1 1.15 1.2 1.25 1.3`). Why
  not by default: on the validation cases of model 0.10.0 every true lesion had a median of at
  least 1.23 times the cord and the tuning chose 1.2, but on the held-out real T1 background the
  weakly enhancing astrocytomas and a lesion the network outlined too widely read 1.08-1.13 and
  were lost (docs/real_anatomy.md). Validation data whose lesions all enhance cannot weigh
  that cost; a user whose validation holds real tumours, non-enhancing ones included, can.
- Sanity warnings (`validation_warnings`): without a case free of tumour, false lesions on
  healthy scans cannot weigh in the choice; with fewer than `MIN_CASES_PER_TYPE` cases of a
  tumour type, the choice rests on a handful of its lesions. The tuning still runs; the warnings
  are printed and recorded with the choice.
- Identity (`tuned_identity`): the tuned copy has the parent's weights, so name, version and
  weights hash alone could not tell their reports apart. It gets its own version, the parent's
  with a local part naming the choice (0.6.0 -> 0.6.0+pp.1a2b3c4d, the first 8 hex digits of
  the sha256 of the postprocessing entry; `--version` sets another), and records its parent
  under "derived_from" (name, version, weights sha256, and what derived it).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import SimpleITK as sitk

from batseg.errors import BATsegError
from batseg.evaluation import check_same_geometry, read_label_file
from batseg.inference.pipeline import tumour_box
from batseg.io import Case, find_cases, read_image
from batseg.labels import TUMOUR_CLASSES
from batseg.metrics import aggregate, evaluate_case
from batseg.postprocess import postprocess
from batseg.postprocess_settings import MAX_MIN_ENHANCEMENT, MAX_MIN_TUMOUR_PROBABILITY, POSTPROCESSING_KEY

# A raw prediction on the case's grid: the label map, the class probabilities (or None) and the
# cord's signal (`batseg.enhancement.cord_reference`; None without a cord). `predict_raw(case,
# image)` makes it: the case tells where a cord mask of the user's lies.
RawPrediction = tuple[sitk.Image, "np.ndarray | None", "float | None"]
# One setting: (minimum volume mm3, one type per lesion, minimum tumour probability, minimum enhancement).
Setting = tuple[float, bool, float, float]

CANDIDATES_MM3: tuple[float, ...] = (0.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
ONE_TYPE_OPTIONS: tuple[bool, ...] = (False, True)
PROBABILITY_CANDIDATES: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
ENHANCEMENT_CANDIDATES: tuple[float, ...] = (0.0,)
TIE_TOLERANCE = 1e-6
# The largest minimum volume a manifest may record (batseg.manifest_schema's bound): 10 litres.
MAX_MIN_VOLUME_MM3 = 1e7
# Fewer validation cases of a tumour type than this make the choice rest on a handful of its lesions.
MIN_CASES_PER_TYPE = 5


@dataclass
class Candidate:
    """One postprocessing setting and its figures on the validation cases."""

    min_volume_mm3: float
    one_type_per_lesion: bool
    min_tumour_probability: float
    min_enhancement: float
    mean_dice: float | None
    detection_f1: float | None
    false_positive_rate: float | None
    true_positive_rate: float | None
    healthy_with_lesion: int
    score: float


@dataclass
class Tuning:
    """The table of candidates and the one chosen."""

    cases: int
    candidates: list[Candidate] = field(default_factory=list)
    types_per_case: list[list[str]] = field(default_factory=list)  # the tumour types in each case's truth

    @property
    def chosen(self) -> Candidate:
        best = max(c.score for c in self.candidates)
        tied = (c for c in self.candidates if c.score >= best - TIE_TOLERANCE)
        return min(tied, key=lambda c: (c.min_volume_mm3, c.min_tumour_probability, c.min_enhancement,
                                        c.one_type_per_lesion))


def validation_pairs(data: str | Path) -> list[tuple[Case, Path]]:
    """(image case, label file) pairs of an nnU-Net raw dataset folder (imagesTr + labelsTr).

    A dataset.json, where present, must name BATseg's labels, as `batseg train` requires: labels
    of another numbering would be scored as the wrong tumour types.
    """
    folder = Path(data).expanduser()
    images, labels = folder / "imagesTr", folder / "labelsTr"
    if not images.is_dir() or not labels.is_dir():
        raise BATsegError(f"{folder} is not an nnU-Net raw dataset folder: it needs imagesTr/ and labelsTr/")
    _check_dataset_json(folder)
    # Label names are the case names as they are: `case_name` would also drop a trailing "_0000",
    # which is a channel suffix on images only (labelsTr/case_0000.nii.gz is case "case_0000").
    suffix = ".nii.gz"
    label_files = {p.name[: -len(suffix)]: p for p in labels.iterdir() if p.name.endswith(suffix)}
    pairs = [(case, label_files[case.name]) for case in find_cases(images) if case.name in label_files]
    if not pairs:
        raise BATsegError(f"no image in {images} has a label file of the same case name in {labels}")
    return pairs


def _check_dataset_json(folder: Path) -> None:
    """BATsegError when the folder's dataset.json is unreadable or names other labels than BATseg's."""
    from batseg.training.datasets import check_labels, read_json_object

    path = folder / "dataset.json"
    if not path.exists():
        return  # a plain imagesTr + labelsTr folder: the label values are checked case by case
    check_labels(read_json_object(path).get("labels"), str(path))


def check_candidates(candidates: Sequence[float]) -> None:
    """BATsegError unless every candidate minimum volume is a finite number from 0 to `MAX_MIN_VOLUME_MM3`.

    An infinite volume would remove every lesion and be written into the model file
    ("min_volume_mm3": Infinity, which strict JSON readers refuse); nan compares false with
    everything; a chosen volume beyond the manifest's bound would make the tuned file unreadable.
    """
    if not candidates:
        raise BATsegError("give at least one minimum volume candidate (mm3)")
    bad = [value for value in candidates if not math.isfinite(value) or not 0 <= value <= MAX_MIN_VOLUME_MM3]
    if bad:
        raise BATsegError(
            f"minimum volume candidates must be finite numbers from 0 to {MAX_MIN_VOLUME_MM3:g} mm3; got {bad[0]:g}"
        )


def check_probability_candidates(candidates: Sequence[float]) -> None:
    """BATsegError unless every candidate minimum tumour probability is a number from 0 to
    `MAX_MIN_TUMOUR_PROBABILITY` (1 would remove every lesion the network has any doubt about)."""
    _check_minimums(candidates, "minimum tumour probability", MAX_MIN_TUMOUR_PROBABILITY, "")


def check_enhancement_candidates(candidates: Sequence[float]) -> None:
    """BATsegError unless every candidate minimum enhancement is a number from 0 to `MAX_MIN_ENHANCEMENT`."""
    _check_minimums(candidates, "minimum enhancement", MAX_MIN_ENHANCEMENT, " (times the cord's signal)")


def _check_minimums(candidates: Sequence[float], what: str, upper: float, unit: str) -> None:
    """BATsegError unless there is a candidate and every one is a number from 0 (keep every lesion) to `upper`."""
    if not candidates:
        raise BATsegError(f"give at least one {what} candidate (0 keeps every lesion)")
    bad = [value for value in candidates if not math.isfinite(value) or not 0 <= value <= upper]
    if bad:
        raise BATsegError(f"{what} candidates must be numbers from 0 to {upper:g}{unit}; got {bad[0]:g}")


def detection_f1(detection: dict[str, Any]) -> float | None:
    """F1 of lesion detection from pooled counts (None when there is neither a true nor a predicted lesion)."""
    recall = detection["true_positive_detection_rate"]
    false_rate = detection["false_positive_detection_rate"]
    if recall is None and false_rate is None:
        return None
    precision = 0.0 if false_rate is None else 1.0 - false_rate
    recall = 0.0 if recall is None else recall
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_candidate(setting: Setting, case_results: list[dict[str, Any]]) -> Candidate:
    """The figures and the criterion (module docstring) of one candidate."""
    summary = aggregate(case_results)
    dice = summary["mean_over_classes"]["dice"]
    f1 = detection_f1(summary["detection"])
    return Candidate(
        min_volume_mm3=setting[0],
        one_type_per_lesion=setting[1],
        min_tumour_probability=setting[2],
        min_enhancement=setting[3],
        mean_dice=dice,
        detection_f1=f1,
        false_positive_rate=summary["detection"]["false_positive_detection_rate"],
        true_positive_rate=summary["detection"]["true_positive_detection_rate"],
        healthy_with_lesion=summary["healthy_cases_with_prediction"],
        score=((dice or 0.0) + (f1 or 0.0)) / 2,
    )


def tune_postprocessing(
    predict_raw: Callable[[Case, sitk.Image], RawPrediction],
    pairs: Sequence[tuple[Case, Path]],
    candidates: Sequence[float] = CANDIDATES_MM3,
    on_case: Callable[[int, int], None] | None = None,
    one_type_options: Sequence[bool] = ONE_TYPE_OPTIONS,
    probability_candidates: Sequence[float] = PROBABILITY_CANDIDATES,
    enhancement_candidates: Sequence[float] = ENHANCEMENT_CANDIDATES,
) -> Tuning:
    """Score every (minimum volume, one type per lesion, minimum tumour probability, minimum
    enhancement) setting on every case; `predict_raw` gives a label map without postprocessing, the
    class probabilities and the cord's signal."""
    check_candidates(candidates)
    check_probability_candidates(probability_candidates)
    check_enhancement_candidates(enhancement_candidates)
    settings = [(float(v), bool(one), float(p), float(e)) for one in one_type_options for e in enhancement_candidates
                for p in probability_candidates for v in candidates]
    results: dict[Setting, list[dict[str, Any]]] = {setting: [] for setting in settings}
    types_per_case = []
    for index, (case, label_path) in enumerate(pairs, start=1):
        # `batseg evaluate`'s own reading and grid check, so both score the same label maps.
        truth, gt = read_label_file(label_path)
        types_per_case.append([c.key for c in TUMOUR_CLASSES if np.any(gt == c.value)])
        image = read_image(case)
        predicted, probabilities, cord_signal = predict_raw(case, image)
        check_same_geometry(predicted, truth, case.name)
        if probabilities is None and any(s[2] > 0 for s in settings):
            raise BATsegError(f"{case.name}: the prediction has no class probabilities, which a minimum tumour "
                              "probability needs; tune with the candidate 0 only")
        scored = _score_settings(sitk.GetArrayFromImage(predicted), probabilities, gt,
                                 tuple(reversed(truth.GetSpacing())), settings,
                                 (sitk.GetArrayViewFromImage(image), cord_signal))
        for setting, result in scored.items():
            results[setting].append(result)
        if on_case is not None:
            on_case(index, len(pairs))
    tuning = Tuning(cases=len(pairs), types_per_case=types_per_case)
    tuning.candidates = [score_candidate(setting, case_results) for setting, case_results in results.items()]
    return tuning


def _score_settings(raw: np.ndarray, probabilities: np.ndarray | None, gt: np.ndarray, spacing: tuple[float, ...],
                    settings: Sequence[Setting], signal: tuple[np.ndarray | None, float | None] = (None, None),
                    ) -> dict[Setting, dict[str, Any]]:
    """`evaluate_case` of every setting's label map of one case, each distinct map scored once;
    `signal`: the scan's array and the cord's signal, for the enhancement minimums."""
    scored: dict[bytes, dict[str, Any]] = {}  # label map digest -> its scores (HD95 is the slow part)
    out = {}
    for volume in sorted({s[0] for s in settings}):
        # Hole filling and small-lesion removal once per volume; the later steps of `postprocess`
        # then on that result, as `postprocess` orders them, inside the lesions' bounding box (as
        # `batseg predict` runs them: every later step is per lesion, so the box changes nothing).
        cleaned = postprocess(raw, spacing, fill_holes=True, min_volume_mm3=volume)
        box = tumour_box(cleaned)
        for setting in (s for s in settings if s[0] == volume):
            final = cleaned if box is None else _later_steps(cleaned, box, spacing, setting, probabilities, signal)
            key = hashlib.sha256(final.tobytes()).digest()
            if key not in scored:
                scored[key] = evaluate_case(final, gt, spacing)
            out[setting] = scored[key]
    return out


def _later_steps(cleaned: np.ndarray, box: tuple[slice, ...], spacing: tuple[float, ...], setting: Setting,
                 probabilities: np.ndarray | None, signal: tuple[np.ndarray | None, float | None]) -> np.ndarray:
    """The steps of `postprocess` after the volume minimum, run on `box` of `cleaned`."""
    _, one_type, least, enhancement = setting
    scan = None if signal[0] is None else signal[0][box]
    final = cleaned.copy()
    final[box] = postprocess(cleaned[box], spacing, probabilities=None if probabilities is None else
                             probabilities[(slice(None), *box)], fill_holes=False, min_volume_mm3=0.0,
                             min_tumour_probability=least, one_type_per_lesion=one_type,
                             min_enhancement=enhancement, volume=scan, cord_signal=signal[1])
    return final


def validation_warnings(tuning: Tuning, min_per_type: int = MIN_CASES_PER_TYPE) -> list[str]:
    """What the validation cases cannot tell (module docstring), one line each."""
    warnings = []
    if tuning.types_per_case and all(tuning.types_per_case):
        warnings.append(
            f"none of the {tuning.cases} validation cases is free of tumour: false lesions on healthy scans cannot "
            "weigh in the choice; add healthy cases"
        )
    for tumour in TUMOUR_CLASSES:
        count = sum(tumour.key in types for types in tuning.types_per_case)
        if count < min_per_type:
            warnings.append(
                f"only {count} validation case(s) hold a {tumour.key} (fewer than {min_per_type}): the choice rests on "
                "few lesions of this type"
            )
    return warnings


def manifest_entry(tuning: Tuning, data: str | Path, predicted_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the model file records of the choice (its "postprocessing" key); `predicted_with`: the
    path the validation cases were predicted along (`CordSettings.as_dict`)."""
    chosen = tuning.chosen
    return {
        POSTPROCESSING_KEY: {
            "fill_holes": True,
            "min_volume_mm3": chosen.min_volume_mm3,
            "one_type_per_lesion": chosen.one_type_per_lesion,
            "min_tumour_probability": chosen.min_tumour_probability,
            "min_enhancement": chosen.min_enhancement,
            "chosen_on": f"{tuning.cases} validation cases of {Path(data).name} by batseg tune-postprocess",
            "criterion": "mean of (mean Dice over tumour classes, lesion detection F1)",
            **({} if predicted_with is None else {"predicted_with": predicted_with}),
            "score": round(chosen.score, 4),
            "warnings": validation_warnings(tuning),
        }
    }


def tuned_identity(parent: dict[str, Any], entry: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The tuned copy's own version and its parent ("derived_from"): see the module docstring."""
    digest = hashlib.sha256(
        json.dumps({"parent": parent.get("weights_sha256"), **entry}, sort_keys=True).encode("utf-8")
    ).hexdigest()[:8]
    base = str(parent.get("version") or "0").split("+", 1)[0]
    if version is not None and not str(version).strip():
        raise BATsegError("--version must not be empty")
    return {
        "version": str(version).strip() if version is not None else f"{base}+pp.{digest}",
        "derived_from": {
            "name": parent.get("name"),
            "version": parent.get("version"),
            "weights_sha256": parent.get("weights_sha256"),
            "by": "batseg tune-postprocess (same weights, postprocessing chosen on validation cases)",
        },
    }


def format_table(tuning: Tuning) -> str:
    """The candidates as a text table, the chosen one marked."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    chosen = tuning.chosen
    lines = [
        f"postprocessing on {tuning.cases} validation cases (synthetic or real, as given; not for clinical use)",
        f"{'min mm3':>8}{'min P':>6}{'min E':>6}{'1 type':>7}{'Dice %':>8}{'F1 %':>7}{'TPR %':>7}{'FPR %':>7}{'healthy+':>9}{'score':>8}",
    ]
    for c in tuning.candidates:
        mark = "  <- chosen" if c is chosen else ""
        lines.append(
            f"{c.min_volume_mm3:>8g}{c.min_tumour_probability:>6g}{c.min_enhancement:>6g}{'yes' if c.one_type_per_lesion else 'no':>7}{pct(c.mean_dice):>8}{pct(c.detection_f1):>7}{pct(c.true_positive_rate):>7}"
            f"{pct(c.false_positive_rate):>7}{c.healthy_with_lesion:>9}{c.score:>8.3f}{mark}"
        )
    return "\n".join(lines)
