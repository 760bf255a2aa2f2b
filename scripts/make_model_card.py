"""Write the shipped model's card and install the model file with its measured metrics.

Run by scripts/train_shipped_model.sh after training and evaluation; reads only what that
script wrote into WORK_DIR (model files, `batseg evaluate` JSON, predictions on the real
healthy scans), so every figure in the card comes from those commands:

    python scripts/make_model_card.py --work WORK_DIR --name batseg-light-phantoms \
        --epochs E --iters I --patch Z Y X
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from batseg.labels import TUMOUR_CLASSES
from batseg.model_file import read_manifest, sha256_file, with_manifest_updates

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "BATsegSlicer" / "Resources" / "Models"
TARGETS = {"mean_dice": 0.80, "mean_hd95_mm": 15.0, "type_accuracy": 0.90}


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The card's headline figures from one `batseg evaluate` JSON."""
    agg = evaluation["aggregate"]
    det = agg["detection"]
    return {
        "n_cases": agg["n_cases"],
        "per_class": {
            k: {"n": v["n_cases"], "dice": v["dice_mean"], "hd95_mm": v["hd95_mean"]} for k, v in agg["per_class"].items()
        },
        "mean_dice": agg["mean_over_classes"]["dice"],
        "mean_hd95_mm": agg["mean_over_classes"]["hd95"],
        "whole_tumour_dice": agg["tumour"]["dice_mean"],
        "detection_tpr": det["true_positive_detection_rate"],
        "detection_fpr": det["false_positive_detection_rate"],
        "type_accuracy": det["type_accuracy"],
        "type_confusion": det["type_confusion"],
        "patient_sensitivity": agg["patient_sensitivity"],
        "healthy_cases": agg["healthy_cases"],
        "healthy_cases_with_prediction": agg["healthy_cases_with_prediction"],
    }


# Stands in for the baseline's figures when it was not trained: every cell reads "n/a".
EMPTY_SUMMARY: dict[str, Any] = {
    "per_class": {c.key: {"n": 0, "dice": None, "hd95_mm": None} for c in TUMOUR_CLASSES},
    "mean_dice": None, "mean_hd95_mm": None, "whole_tumour_dice": None, "detection_tpr": None,
    "detection_fpr": None, "type_accuracy": None, "patient_sensitivity": None,
    "healthy_cases": "n/a", "healthy_cases_with_prediction": "n/a",
}


def cases_with_lesions(pred_dir: Path) -> str:
    """'k / n': how many predicted cases of a folder report at least one lesion ('n/a' if not run)."""
    reports = sorted(pred_dir.glob("*.report.json"))
    if not reports:
        return "n/a"
    return f"{sum(bool(load_json(p)['lesions']) for p in reports)} / {len(reports)}"


def training_data_text(train_data: Path | None) -> str:
    """What the model was trained on, from the training set's phantoms.json."""
    if train_data is None or not (train_data / "phantoms.json").is_file():
        return "200 synthetic phantoms from `batseg phantom -n 200 --seed 2026` (45 per tumour type, 20 healthy)"
    record = load_json(train_data / "phantoms.json")
    plans = record["plans"]
    t2 = sum(p.get("contrast") == "t2" for p in plans)
    healthy = sum(not p["tumour_types"] for p in plans) - t2
    per_type = [sum(bool(p["tumour_types"]) and p["tumour_types"][0] == c.value for p in plans) for c in TUMOUR_CLASSES]
    option = f" --t2-negative-fraction {record['t2_negative_fraction']:g}" if t2 else ""
    text = (f"{len(plans)} synthetic phantoms from `batseg phantom -n {len(plans)} --seed {record['seed']}{option}` "
            f"({', '.join(f'{n} {c.key}' for n, c in zip(per_type, TUMOUR_CLASSES))}, {healthy} healthy")
    if t2:
        text += (f", and {t2} healthy phantoms rendered T2-weighted: wrong-contrast negatives, meant to teach the "
                 "model that the bright CSF of a T2 scan loaded by mistake is not tumour")
    return text + ")"


def real_scan_findings(pred_dir: Path) -> dict[str, int]:
    """Number of reported lesions per real healthy scan (after postprocessing)."""
    return {p.name.split(".")[0]: len(load_json(p)["lesions"]) for p in sorted(pred_dir.glob("*.report.json"))}


def comparison_table(batseg: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    baseline = baseline or EMPTY_SUMMARY
    rows = ["| class | n | BATseg Dice % | baseline Dice % | BATseg HD95 mm | baseline HD95 mm |", "|---|---|---|---|---|---|"]
    for c in TUMOUR_CLASSES:
        b, n = batseg["per_class"][c.key], baseline["per_class"][c.key]
        rows.append(f"| {c.name} | {b['n']} | {pct(b['dice'])} | {pct(n['dice'])} | {mm(b['hd95_mm'])} | {mm(n['hd95_mm'])} |")
    rows.append(
        f"| **mean over classes** | | **{pct(batseg['mean_dice'])}** | {pct(baseline['mean_dice'])} | "
        f"**{mm(batseg['mean_hd95_mm'])}** | {mm(baseline['mean_hd95_mm'])} |"
    )
    rows.append(f"| whole tumour (any type) | | {pct(batseg['whole_tumour_dice'])} | {pct(baseline['whole_tumour_dice'])} | | |")
    return "\n".join(rows)


def detection_table(batseg: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    baseline = baseline or EMPTY_SUMMARY
    rows = ["| figure | BATseg | baseline |", "|---|---|---|"]
    for label, key in (
        ("lesion detection rate (true positive, >= 6 mm3 overlap) %", "detection_tpr"),
        ("false positive detection rate %", "detection_fpr"),
        ("lesion type accuracy %", "type_accuracy"),
        ("patient-level sensitivity %", "patient_sensitivity"),
    ):
        rows.append(f"| {label} | {pct(batseg[key])} | {pct(baseline[key])} |")
    rows.append(
        f"| healthy phantoms with a reported lesion | {batseg['healthy_cases_with_prediction']} / {batseg['healthy_cases']} "
        f"| {baseline['healthy_cases_with_prediction']} / {baseline['healthy_cases']} |"
    )
    rows.append(
        "| healthy T2-weighted phantoms (`batseg phantom -n 10 --seed 8 --healthy-fraction 0 --t2-negative-fraction 1`) "
        f"with a reported lesion | {batseg.get('t2_negatives_with_lesion', 'n/a')} "
        f"| {baseline.get('t2_negatives_with_lesion', 'n/a')} |"
    )
    return "\n".join(rows)


def confusion_table(confusion: list[list[int]]) -> str:
    names = [c.name for c in TUMOUR_CLASSES]
    rows = ["| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    rows += [f"| {names[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(confusion)]
    return "\n".join(rows)


def target_lines(batseg: dict[str, Any], baseline: dict[str, Any] | None, ablation: dict[str, Any] | None = None) -> str:
    """Met / NOT met per target; the HD95 comparison from the equal-budget ablation pair when this
    version has no baseline of its own (a fine-tune)."""
    if baseline is None and ablation is not None:
        pair = target_lines(ablation["batseg"], ablation["baseline"]).splitlines()[-1]
        return "\n".join(target_lines(batseg, None).splitlines()[:-1] + [pair + " (from-scratch pair at equal budget, below)"])
    baseline = baseline or EMPTY_SUMMARY
    checks = [
        ("mean Dice >= 0.80", batseg["mean_dice"] is not None and batseg["mean_dice"] >= TARGETS["mean_dice"]),
        ("mean HD95 <= 15 mm", batseg["mean_hd95_mm"] is not None and batseg["mean_hd95_mm"] <= TARGETS["mean_hd95_mm"]),
        ("lesion type accuracy >= 90%", batseg["type_accuracy"] is not None and batseg["type_accuracy"] >= TARGETS["type_accuracy"]),
        (
            "BATseg no worse than the baseline on mean HD95",
            None not in (batseg["mean_hd95_mm"], baseline["mean_hd95_mm"]) and batseg["mean_hd95_mm"] <= baseline["mean_hd95_mm"],
        ),
    ]
    lines = [f"- {name}: **{'met' if ok else 'NOT met'}**" for name, ok in checks]
    if baseline["mean_hd95_mm"] is None:  # no baseline trained: the comparison is unknown, not failed
        lines[-1] = f"- {checks[-1][0]}: **not measured** (no baseline was trained for this version)"
    elif not batseg["detection_tpr"] or not baseline["detection_tpr"]:
        # A model that finds nothing scores the 450 mm miss rule in every class: equal HD95s would read "met".
        silent = [n for n, s in (("BATseg", batseg), ("the baseline", baseline)) if not s["detection_tpr"]]
        verb, whose = ("detect", "their") if len(silent) == 2 else ("detects", "its")
        lines[-1] = (f"- {checks[-1][0]}: **not measured** ({' and '.join(silent)} {verb} no lesion, so {whose} "
                     "HD95 is the 450 mm rule for a missed class, not a boundary distance)")
    return "\n".join(lines)


def status_text(batseg: dict[str, Any], device: str) -> str:
    """An honest one-paragraph verdict, derived from the held-out figures."""
    machine = "one GPU" if device == "cuda" else f"a {os.cpu_count()}-core CPU"
    if not batseg["detection_tpr"]:
        return (
            "**This version detects no tumour.** On the held-out phantoms it reports no lesion at all "
            "(detection rate 0%), on healthy phantoms and real healthy cords too. It was trained on "
            f"{machine} for a budget far too small for the task (the training loss was still falling "
            "and the tumour probability at tumour voxels was rising slowly); it is shipped so that "
            "the pipeline, the Slicer module and the demo run end to end, not to segment anything. "
            "Retrain on a GPU with `DEVICE=cuda EPOCHS=1000 ITERS=250 VERSION=1.0.0 bash scripts/train_shipped_model.sh`."
        )
    return (
        f"Trained on {machine} within the small budget below; the held-out results show what it "
        "does and does not do, and which of the targets it misses. Retrain on a GPU with "
        "`DEVICE=cuda EPOCHS=1000 ITERS=250 VERSION=1.0.0 bash scripts/train_shipped_model.sh` for a stronger model."
    )


def tuning_section(work: Path, name: str) -> str:
    """The card's postprocessing paragraph and table, from `batseg tune-postprocess --json`.

    With probability or enhancement minimums among the candidates the full grid runs to hundreds
    of rows; the table then shows the lines through the chosen setting (every value of one graded
    minimum with the others at their chosen values), the chosen type switch on all."""
    table_file = work / f"tune_{name}.json"
    if not table_file.is_file():
        return "Default postprocessing (minimum lesion volume 20 mm3); no validation tuning was run."
    table = load_json(table_file)
    chosen = table["postprocessing"]
    key = _setting_key
    chosen_key = key(chosen)
    candidates = table["candidates"]
    graded = any(len({key(c)[axis] for c in candidates}) > 1 for axis in (2, 3))
    if graded:
        candidates = [c for c in candidates if key(c)[1] == chosen_key[1]
                      and sum(key(c)[axis] != chosen_key[axis] for axis in (0, 2, 3)) <= 1]
    rows = ["| min volume mm3 | min tumour probability | min enhancement | one type per lesion | mean Dice % "
            "| detection F1 % | FP detection rate % | healthy with a lesion | score |",
            "|---|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        mark = " (chosen)" if key(c) == chosen_key else ""
        rows.append(f"| {c['min_volume_mm3']:g}{mark} | {key(c)[2]:g} | {key(c)[3]:g} | {'yes' if key(c)[1] else 'no'} | "
                    f"{pct(c['mean_dice'])} | {pct(c['detection_f1'])} | {pct(c['false_positive_rate'])} | "
                    f"{c['healthy_with_lesion']} | {c['score']:.3f} |")
    one_type_text = "on" if chosen_key[1] else "off"
    shown = (f"Of the {len(table['candidates'])} settings scored, the table shows those through the chosen one.\n\n"
             if graded else "")
    return (
        f"Minimum lesion volume **{chosen_key[0]:g} mm3**, minimum mean tumour probability **{chosen_key[2]:g}**, "
        f"minimum enhancement **{chosen_key[3]:g}** times the cord and one tumour type per lesion **{one_type_text}**, "
        f"chosen by `batseg tune-postprocess` on {table['cases']} validation phantoms (`batseg phantom -n 20 "
        "--seed 11`, neither training nor test cases) and recorded in the manifest, so `batseg predict` and the "
        "Slicer module use them by default (holes are filled per class first). Criterion: mean of the mean Dice "
        "over classes and the lesion detection F1.\n\n" + shown
        + "\n".join(rows)
    )


def _setting_key(entry: dict[str, Any]) -> tuple[float, bool, float, float]:
    """(minimum volume, one type per lesion, minimum tumour probability, minimum enhancement) of a
    candidate or a choice (the last two 0 in tables written before they existed)."""
    return (entry["min_volume_mm3"], bool(entry.get("one_type_per_lesion", False)),
            float(entry.get("min_tumour_probability") or 0.0), float(entry.get("min_enhancement") or 0.0))


def parent_section(manifest: dict[str, Any], parent_file: Path | None) -> str:
    """How a fine-tuned model started: its parent and the parent's own recorded training."""
    parent = manifest.get("parent")
    if not parent:
        return "Trained from scratch (nnU-Net's weight initialisation)."
    text = (
        f"Initialised from **{parent['name']} {parent['version']}** (file sha256 `{parent['sha256']}`), then "
        f"trained with the command above on {parent.get('new_cases', 'the')} cases, without replaying the "
        "parent's own training data."
    )
    if parent_file is not None and parent_file.is_file():
        parent_manifest = read_manifest(parent_file)
        own = parent_manifest.get("training", {})
        grandparent = parent_manifest.get("parent")
        origin = (f"was itself initialised from {grandparent['name']} {grandparent['version']} (whose card, in git "
                  "history, goes on up the line) and trained" if grandparent else "was trained from scratch")
        text += (
            " Its own card (in git history next to its file) describes its data and results."
            f" The parent {origin} for {own.get('epochs_completed')} epochs x "
            f"{own.get('iterations_per_epoch')} iterations (batch {own.get('batch_size')}) with:\n\n```\n"
            + " ".join(own.get("command", [])) + "\n```"
        )
    return text


def baseline_sentence(baseline: dict | None, manifest: dict[str, Any], ablation: dict | None = None) -> str:
    """Whether the baseline was trained for this version, and why not."""
    if baseline:
        return "Its figures are in the tables below."
    if ablation:
        return (
            "This version continues a parent, and no baseline parent with the same budget exists, so the "
            "comparison is made on a pair trained from scratch for it: BATseg and the baseline, same data, seed, "
            "budget and machine (section \"Boundary head at equal budget\" below); this version's baseline "
            "column reads n/a."
        )
    if manifest.get("parent"):
        return (
            "It was NOT trained for this version: this model continues a parent, and no baseline parent "
            "with the same budget exists. The from-scratch recipe (`scripts/train_shipped_model.sh` without "
            "FINETUNE_FROM) trains both; its column reads n/a."
        )
    return (
        "It was NOT trained for this version: the CPU time of the session that trained it went to BATseg "
        "itself, so the comparison asked for is still to be made; its column reads n/a."
    )


# A pair's work dir may hold this file: how the run departed from the recipe, quoted by the card.
ABLATION_NOTE = "ABLATION_NOTE.md"


def read_ablation(work: Path | None, name: str) -> dict[str, Any] | None:
    """The from-scratch BATseg / baseline pair of another recipe run (`--ablation-work`), or None."""
    if work is None:
        return None
    pair = {}
    for key, model in (("batseg", name), ("baseline", f"{name}-baseline")):
        pair[key] = summary(load_json(work / f"eval_{model}.json"))
        pair[key]["t2_negatives_with_lesion"] = cases_with_lesions(work / f"pred_t2_{model}")
    training = read_manifest(work / f"{name}-tuned.batseg").get("training", {})
    pair["budget"] = (f"{training.get('epochs_completed')} epochs x {training.get('iterations_per_epoch')} iterations, "
                      f"batch {training.get('batch_size')}{dice_mode_text(training)}")
    pair["cases"] = training.get("data", {}).get("num_cases")
    pair["command"] = " ".join(training.get("command", []))
    pair["commit"] = optional_text(work / "COMMIT")  # the commit the pair trained at, when the run recorded it
    # How the run departed from the recipe, in its author's words (a run by hand, not by the script).
    pair["note"] = optional_text(work / ABLATION_NOTE)
    return pair


def optional_text(path: Path) -> str:
    """A work dir's optional text file, stripped; "" when the run did not write it."""
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def dice_mode_text(training: dict[str, Any]) -> str:
    """", soft Dice over the batch" for a model trained with --batch-dice (the plan's per-sample Dice says nothing)."""
    return ", soft Dice over the batch (`--batch-dice`)" if training.get("batch_dice") else ""


# Below this lesion detection rate a model of the pair has hardly begun to segment.
EARLY_DETECTION_RATE = 0.2


def ablation_section(ablation: dict[str, Any] | None) -> str:
    """The equal-budget comparison of the boundary head, for a version without its own baseline."""
    if ablation is None:
        return ""
    trained_at = f"Both trained with the code of commit `{ablation['commit']}`. " if ablation.get("commit") else ""
    return f"""## Boundary head at equal budget (from-scratch pair)

BATseg and the nnU-Net baseline (`--loss none`: the same network without the field head) trained
from scratch on the same {ablation['cases']} phantoms, seed and machine, {ablation['budget']}, with
the training arguments of `scripts/train_shipped_model.sh` without FINETUNE_FROM; each model with its own minimum lesion
volume tuned on the validation phantoms, scored on the same 40 held-out phantoms. Neither model
is this version: the pair isolates what the boundary head does under one budget (the version in
their commands is only the recipe's label). {trained_at}BATseg's command:

```
{ablation['command']}
```
{resumed_note(ablation['command'])}{ablation_note(ablation)}
{comparison_table(ablation['batseg'], ablation['baseline'])}

{detection_table(ablation['batseg'], ablation['baseline'])}
{pair_reading(ablation)}"""


def ablation_note(ablation: dict[str, Any]) -> str:
    """The work dir's own note on the pair (ABLATION_NOTE.md), as a paragraph, or nothing."""
    return f"\n{ablation['note']}\n" if ablation.get("note") else ""


def resumed_note(command: str) -> str:
    """A sentence when the pair's recorded command continued an interrupted run."""
    if "--resume" not in command.split():
        return ""
    return ("\nThe run was interrupted and continued from nnU-Net's latest checkpoint (`--resume`; checkpoints "
            "every 10 epochs): training restarted from that checkpoint's weights and schedule, so the model went "
            "through the budget once (the epochs run after the checkpoint and before the interruption were "
            "discarded).\n")


def pair_reading(ablation: dict[str, Any]) -> str:
    """What the pair can say: nothing about boundaries while either model has hardly begun to detect."""
    rates = [ablation[k]["detection_tpr"] or 0.0 for k in ("batseg", "baseline")]
    if min(rates) >= EARLY_DETECTION_RATE:
        return ""
    return (
        f"\nAt this budget the pair has hardly begun to segment (lesion detection {pct(rates[0])}% for BATseg, "
        f"{pct(rates[1])}% for the baseline), so it says little about what the boundary head does for boundaries. "
        "The comparison needs a budget at which both models find the tumours: `DEVICE=cuda EPOCHS=1000 ITERS=250 VERSION=1.0.0 "
        "bash scripts/train_shipped_model.sh` trains the pair on a GPU.\n"
    )


def machine_text(device: str) -> str:
    """Where the model was trained, as the card says it."""
    if device == "cuda":
        return "on one GPU"
    return f"on a {os.cpu_count()}-core CPU (no GPU was available)"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def card_text(args: argparse.Namespace, manifest: dict[str, Any], batseg: dict, baseline: dict, real: dict, model_file: Path,
              ablation: dict[str, Any] | None = None) -> str:
    training = manifest.get("training", {})
    real_lines = "\n".join(f"| {name} | {count} |" for name, count in real.items())
    command = " ".join(training.get("command", [])) or "see scripts/train_shipped_model.sh"
    return f"""# Model card: {manifest['name']} {manifest['version']}

> **Trained on synthetic phantoms only; not for clinical use.** This model demonstrates the
> BATseg pipeline. It has never seen a real tumour. It is not a medical device and must not be
> used for diagnosis, treatment or any decision about a patient.

| | |
|---|---|
| file | `{model_file.name}` ({model_file.stat().st_size / 1e6:.1f} MB) |
| weights sha256 | `{manifest['weights_sha256']}` |
| network | BATseg: nnU-Net PlainConvUNet, topology `light` (5 stages, 16-128 features) + 1x1x1 surface-distance-field head (sigmoid, 4 class-wise channels, truncation t = 1), loss CE + Dice + mean \\|e\\|^3 |
| input | sagittal T1 post-gadolinium MRI, resampled to {manifest['input']['target_spacing']} mm (z, y, x = left-right, superior-inferior, anterior-posterior), z-score per volume |
| classes | 1 spinal meningioma, 2 ependymoma, 3 astrocytoma, 4 hemangioblastoma |
| licence | BSD-3-Clause, as the project |

## Status

{status_text(batseg, args.device)}

## Training data

{training_data_text(args.train_data)},
generated by `batseg.phantoms` at the commit below (`docs/phantoms.md` describes the generator
and compares it with real scans); nothing else. No real patient image was used for training.
The held-out test set comes from the same generator with another seed.

## Training

Exact command (recorded in the manifest), run at commit `{args.commit}`:

```
{command}
```

Budget: {args.epochs} epochs x {args.iters} iterations, batch {args.batch}, patch {' x '.join(map(str, args.patch))},
foreground oversampling {args.oversampling}{dice_mode_text(training)}, seed 1, {machine_text(args.device)}; nnU-Net v2's SGD, poly
learning rate from {training.get('learning_rate', 0.01):g}, its augmentation; the field is computed in the augmentation worker
after spatial augmentation. Segmentation loss: nnU-Net's CE + soft Dice without its smoothing term (since
commit 8cac7b8, `docs/method.md`: with nnU-Net's 1e-5, which models up to 0.4.0 were trained with, an
empty prediction scored best on one-tumour-type phantoms and a fine-tune collapsed). Since commit 16d1b76
(models from 0.6.0), tumour-free cases with a cord mask centre their oversampled patches on the spinal cord
(`training/negative_sampling.py`). This is a very small budget next to the paper's 1000 x 250
iterations on a GPU; retrain with `EPOCHS`/`ITERS` raised (and `DEVICE=cuda`) for a stronger model.

{parent_section(manifest, args.parent_file)}

The nnU-Net baseline is the same network without the field head (`--loss none`), trained with
the same data, seed, budget and machine. {baseline_sentence(baseline, manifest, ablation)}

## Postprocessing

{tuning_section(args.work, args.name)}

## Held-out test: 40 phantoms (`batseg phantom -n 40 --seed 7`), never seen in training

Predicted with `batseg predict` (each model with its own tuned minimum volume), scored with `batseg evaluate`
(Dice, HD95 with the 450 mm rule for a missed class, Lemay's >= 6 mm3 detection).

{comparison_table(batseg, baseline)}

{detection_table(batseg, baseline)}

Lesion type confusion, BATseg (rows true type, columns predicted type, detected lesions):

{confusion_table(batseg['type_confusion'])}

Targets set for the shipped model:

{target_lines(batseg, baseline, ablation)}

{ablation_section(ablation)}
## Real healthy spinal cords

The real scans in `../shared/data/real-spine-mri` (healthy volunteers; T1w without contrast and
T2w, not the T1 Gd the model expects) resliced to a clinical sagittal grid (0.5 x 0.5 mm,
3.3 mm slices across left-right) by `scripts/reslice_real_scans.py`. Lesions reported after
postprocessing (the correct answer is 0 for each):

| scan | lesions reported |
|---|---|
{real_lines}

The files carry no acquisition metadata, so `batseg predict` cannot tell that the T2 scans are
T2. A scan loaded from DICOM, or with a BIDS sidecar, whose echo time says T2 is segmented with a
warning that the model expects T1 Gd (`batseg/acquisition.py`, `docs/inference.md`).

## Limitations

- Synthetic training data: real tumours, scanners and artefacts differ from the phantoms.
  Results on phantoms say nothing about accuracy on patients.
- Trained at twice the paper's in-plane spacing (0.94 mm) for CPU speed; small
  hemangioblastoma nodules are the most affected.
- {reproduce_text(args, manifest)}
"""


def reproduce_text(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    """The one command that rebuilds this model and every number of its card."""
    version = manifest["version"]
    budget = f"EPOCHS={args.epochs} ITERS={args.iters} VERSION={version}"
    record = load_json(args.train_data / "phantoms.json") if args.train_data is not None else {}
    if record.get("t2_negative_fraction") or record.get("num_cases", 200) != 200:  # the recipe's data knobs were set
        budget += f" TRAIN_CASES={record['num_cases']} T2_FRACTION={record.get('t2_negative_fraction', 0):g}"
    parent = manifest.get("parent")
    if not parent:
        return f"Reproduce every number above with `{budget} bash scripts/train_shipped_model.sh` at commit `{args.commit}`."
    budget += f" LR={manifest.get('training', {}).get('learning_rate', 0.005):g}"  # fine-tunes set it
    parent_path = f"BATsegSlicer/Resources/Models/{parent['name']}-{parent['version']}.batseg"
    return (
        f"Reproduce every number above at commit `{args.commit}` with "
        f"`FINETUNE_FROM=parent.batseg {budget} bash scripts/train_shipped_model.sh`, where `parent.batseg` is "
        f"`{parent_path}` from git history (`git log --all -- {parent_path}` finds the commit; its sha256 is "
        f"`{parent['sha256']}`)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--iters", type=int, required=True)
    parser.add_argument("--patch", type=int, nargs=3, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--oversampling", type=float, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device the model was trained on")
    parser.add_argument("--commit", default=None, help="commit the training ran at (default: the current HEAD)")
    parser.add_argument("--parent-file", type=Path, default=None, help="the parent model file of a fine-tuned model")
    parser.add_argument("--train-data", type=Path, default=None, help="the phantom training set (its phantoms.json)")
    parser.add_argument("--ablation-work", type=Path, default=None,
                        help="work dir of a from-scratch recipe run (BATseg + baseline) to report for a fine-tuned model")
    parser.add_argument("--version", default=None, help="version to record (default: the trained file's)")
    parser.add_argument("--force", action="store_true", help="replace an existing shipped file of that version")
    args = parser.parse_args()
    args.commit = args.commit or git_commit()
    batseg = summary(load_json(args.work / f"eval_{args.name}.json"))
    baseline_json = args.work / f"eval_{args.name}-baseline.json"
    baseline = summary(load_json(baseline_json)) if baseline_json.is_file() else None
    batseg["t2_negatives_with_lesion"] = cases_with_lesions(args.work / f"pred_t2_{args.name}")
    if baseline:
        baseline["t2_negatives_with_lesion"] = cases_with_lesions(args.work / f"pred_t2_{args.name}-baseline")
    real = real_scan_findings(args.work / "pred_real")
    source = args.work / f"{args.name}-tuned.batseg"  # the trained file with its chosen postprocessing
    manifest = read_manifest(source)
    metrics = {
        "held_out_phantoms": batseg,
        "nnunet_baseline_held_out_phantoms": baseline or "not trained",
        "real_healthy_scans_lesions_reported": real,
    }
    ablation = read_ablation(args.ablation_work, args.name)
    if ablation:
        metrics["boundary_head_ablation_from_scratch"] = {k: ablation[k] for k in ("budget", "cases", "batseg", "baseline")}
    MODELS.mkdir(parents=True, exist_ok=True)
    version = args.version or manifest["version"]
    target = MODELS / f"{args.name}-{version}.batseg"
    if target.exists() and not args.force:
        # A shipped version is never silently replaced by another training run.
        raise SystemExit(f"{target} already exists: choose another VERSION, or pass --force to replace it")
    with_manifest_updates(source, {"metrics": metrics, "version": version}, target, overwrite=True)
    card = MODELS / f"{args.name}-{version}.md"
    card.write_text(card_text(args, read_manifest(target), batseg, baseline, real, target, ablation))
    shutil.copyfile(args.work / f"eval_{args.name}.png", MODELS / f"{args.name}-{version}.eval.png")
    print(f"wrote {target} (sha256 {sha256_file(target)}) and {card}")


if __name__ == "__main__":
    main()
