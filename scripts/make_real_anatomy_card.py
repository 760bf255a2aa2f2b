"""Write the card of a model fine-tuned on lesions in real backgrounds, and install the model file.

Run by scripts/train_real_anatomy_model.sh; reads only what that script wrote into WORK_DIR
(`batseg evaluate` JSON of parent and child on held-out phantoms, their predictions on T2
phantoms, `scripts/evaluate_real_anatomy.py` results, the tuning table), so every figure of the
card comes from those commands. The phantom tables reuse scripts/make_model_card.py's.

    python scripts/make_real_anatomy_card.py --work WORK_DIR --name batseg-light-synthetic \
        --parent PARENT.batseg --version 0.7.0 --epochs 50 --iters 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_anatomy_soup as soup  # noqa: E402  (a script beside this one)
from evaluate_real_anatomy import contrast_cell  # noqa: E402
from make_model_card import (  # noqa: E402
    MODELS, REPO, cases_with_lesions, confusion_table, load_json, pct, summary, tuning_section,
)

from batseg.model_file import read_manifest, sha256_file, with_manifest_updates  # noqa: E402

DISCLAIMER = (
    "Research software. This model is trained on synthetic data only: computer-generated phantoms and "
    "synthetic lesions painted into real healthy spinal MRI of volunteers; it has never seen a real tumour. "
    "It is not a medical device and is not for clinical use."
)
TARGETS = {"large_detected": 0.90, "large_type_accuracy": 0.80}
# Issue 13's phantom target: no worse than 0.6.0 on the 40 held-out phantoms (its card), fewer false lesions.
PHANTOM_BASELINE = {"version": "0.6.0", "mean_dice": 0.693, "detection_tpr": 0.864, "detection_fpr": 0.379,
                    "type_accuracy": 0.947}


def _real(work: Path, tag: str) -> dict[str, Any]:
    return load_json(work / f"real_eval_{tag}" / "real_anatomy.json")


def _phantoms(work: Path, tag: str) -> dict[str, Any]:
    evaluation = load_json(work / f"eval_{tag}.json")
    figures = summary(evaluation)
    figures["version"] = str((evaluation.get("model") or {}).get("version", tag))  # from the predictions' reports
    figures["t2_negatives_with_lesion"] = cases_with_lesions(work / f"pred_t2_{tag}")
    return figures


def before_after_table(parent: dict, child: dict, parent_real: dict, child_real: dict, label: str = "parent") -> str:
    """The headline table: the model compared with (`label`: the parent, or the model a soup replaces) and this one."""
    p, c = parent_real["insertions"]["summary"], child_real["insertions"]["summary"]
    rows = [f"| data | figure | {label} {parent['version']} | this model |", "|---|---|---|---|"]
    real = [("lesions of all sizes detected", "detected"), ("lesions >= 0.5 cm3 detected", "large_detected"),
            ("type accuracy, detected lesions >= 0.5 cm3", "large_type_accuracy"),
            ("type accuracy, all detected lesions", "type_accuracy")]
    for figure, key in real:
        rows.append(f"| held-out real backgrounds, {p['lesions']} inserted lesions | {figure} | {pct(p[key])} % | {pct(c[key])} % |")
    rows.append(f"| held-out real backgrounds | false lesions per scan | {p['false_lesions_per_scan']:.2f} | "
                f"{c['false_lesions_per_scan']:.2f} |")
    for key in p["dice_per_type"]:
        rows.append(f"| held-out real backgrounds | Dice {key} | {pct(p['dice_per_type'][key])} % | "
                    f"{pct(c['dice_per_type'][key])} % |")
    for figure, key in (("mean Dice over types", "mean_dice"), ("lesions detected", "detection_tpr"),
                       ("reported lesions that are false", "detection_fpr"), ("type accuracy", "type_accuracy")):
        rows.append(f"| 40 held-out phantoms | {figure} | {pct(parent[key])} % | {pct(child[key])} % |")
    rows.append(f"| 40 held-out phantoms | mean HD95 | {parent['mean_hd95_mm']:.1f} mm | {child['mean_hd95_mm']:.1f} mm |")
    rows.append(f"| 10 healthy T2 phantoms | cases with a lesion | {parent['t2_negatives_with_lesion']} | "
                f"{child['t2_negatives_with_lesion']} |")
    return "\n".join(rows)


def background_table(parent_real: dict, child_real: dict, label: str = "parent") -> str:
    rows = [f"| held-out background | lesions | detected ({label} / this) | >= 0.5 cm3 detected ({label} / this) | "
            f"typed right, >= 0.5 cm3 ({label} / this) |", "|---|---|---|---|---|"]
    for name, c in child_real["insertions"]["summary"]["by_background"].items():
        p = parent_real["insertions"]["summary"]["by_background"][name]
        rows.append(f"| {name} | {c['lesions']} | {pct(p['detected'])} / {pct(c['detected'])} % | "
                    f"{pct(p['large_detected'])} / {pct(c['large_detected'])} % | "
                    f"{pct(p['large_type_accuracy'])} / {pct(c['large_type_accuracy'])} % |")
    return "\n".join(rows)


def background_type_table(parent_real: dict, child_real: dict, label: str = "parent") -> str:
    """Per held-out background and tumour type: detection of lesions >= 0.5 cm3 and Dice, before / this model."""
    rows = [f"| held-out background | type | lesions (>= 0.5 cm3) | >= 0.5 cm3 detected ({label} / this) | "
            f"Dice ({label} / this) |", "|---|---|---|---|---|"]
    for name, c in child_real["insertions"]["summary"]["by_background"].items():
        before = parent_real["insertions"]["summary"]["by_background"][name].get("per_type", {})
        for kind, t in c.get("per_type", {}).items():
            if not t["lesions"]:
                continue
            b = before.get(kind, {})
            rows.append(f"| {name} | {kind} | {t['lesions']} ({t['large_lesions']}) | "
                        f"{pct(b.get('large_detected'))} / {pct(t['large_detected'])} % | "
                        f"{pct(b.get('dice'))} / {pct(t['dice'])} % |")
    return "\n".join(rows)


def unaltered_table(parent_real: dict, child_real: dict, label: str = "parent") -> str:
    rows = [f"| real scan (no lesion) | in training? | lesions as distributed ({label} / this) | "
            f"lesions on a 0.5 x 0.5 x 3.6 mm sagittal grid ({label} / this) | T2 warning (distributed / resliced) |",
            "|---|---|---|---|---|"]
    training = set(child_real.get("training_backgrounds", []))
    for name, kinds in child_real["unaltered"].items():
        before = parent_real["unaltered"].get(name, {})
        cells = [f"{before.get(k, {}).get('lesions', 'n/a')} / {kinds.get(k, {}).get('lesions', 'n/a')}"
                 for k in ("distributed", "resliced")]
        warned = " / ".join(contrast_cell(kinds.get(k, {})) for k in ("distributed", "resliced"))
        role = "as a background" if name in training else "no"
        rows.append(f"| {name} | {role} | {cells[0]} | {cells[1]} | {warned} |")
    return "\n".join(rows)


def target_lines(parent: dict, child: dict, child_real: dict, label: str = "parent") -> str:
    s = child_real["insertions"]["summary"]
    t1 = [child_real["unaltered"][n] for n in ("sct_t1w", "unf01_t1w") if n in child_real["unaltered"]]
    t1_lesions = sum(k.get("lesions", 0) for scan in t1 for k in scan.values())
    t2 = {n: v for n, v in child_real["unaltered"].items() if "t2" in n}
    t2_versions = [k for scan in t2.values() for k in scan.values()]
    # The target: each T2 scan version gets no lesion, or a contrast warning: the one that says it
    # looks T2-weighted, or the one that says its contrast could not be checked (both counted apart).
    t2_failed = sum(1 for k in t2_versions if k.get("lesions", 0) and not k.get("contrast_warning")
                    and not k.get("contrast_unchecked"))
    t2_lesions = sum(k.get("lesions", 0) for k in t2_versions)
    t2_warned = sum(1 for k in t2_versions if k.get("contrast_warning"))
    t2_unchecked = sum(1 for k in t2_versions if k.get("contrast_unchecked") and not k.get("contrast_warning"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    lines = [
        f"- >= 90% of held-out inserted lesions >= 0.5 cm3 detected: {pct(s['large_detected'])} %, "
        f"{verdict((s['large_detected'] or 0) >= TARGETS['large_detected'])}",
        f"- type accuracy >= 80% on them: {pct(s['large_type_accuracy'])} %, "
        f"{verdict((s['large_type_accuracy'] or 0) >= TARGETS['large_type_accuracy'])}",
        f"- 0 lesions on the unaltered real T1 scans: {t1_lesions}, {verdict(t1_lesions == 0)}",
        f"- 0 lesions or a contrast warning on the real T2 scans: {t2_lesions} lesions over {len(t2_versions)} scan "
        f"versions, {t2_warned} of them warned as T2-weighted, {t2_unchecked} told that the contrast could not be "
        f"checked, {t2_failed} with a lesion and neither warning, "
        f"{verdict(t2_failed == 0)}",
        phantom_line("held-out phantoms no worse than 0.6.0, fewer false lesions", PHANTOM_BASELINE, child, verdict),
        phantom_line(f"and against the {label} {parent['version']}", parent, child, None),
    ]
    return "\n".join(lines)


def phantom_line(label: str, before: dict, child: dict, verdict: Any) -> str:
    """One target line on the 40 held-out phantoms; `verdict` None: a comparison without a target."""
    ok = (child["mean_dice"] >= before["mean_dice"] and child["detection_tpr"] >= before["detection_tpr"]
          and child["type_accuracy"] >= before["type_accuracy"] and child["detection_fpr"] < before["detection_fpr"])
    figures = (f"mean Dice {pct(before['mean_dice'])} -> {pct(child['mean_dice'])} %, detection "
               f"{pct(before['detection_tpr'])} -> {pct(child['detection_tpr'])} %, type accuracy "
               f"{pct(before['type_accuracy'])} -> {pct(child['type_accuracy'])} %, false-positive rate "
               f"{pct(before['detection_fpr'])} -> {pct(child['detection_fpr'])} %")
    return f"- {label}: {figures}" + (f", {verdict(ok)}" if verdict else "")


def regressions(parent: dict, child: dict, label: str = "parent") -> str:
    """The phantom figures this model does worse on than the model it is compared with, said plainly."""
    worse = [f"{figure} {pct(parent[key])} -> {pct(child[key])} %" for figure, key, higher_is_better in (
        ("mean Dice", "mean_dice", True), ("detection", "detection_tpr", True), ("type accuracy", "type_accuracy", True),
        ("share of false reported lesions", "detection_fpr", False)) if (child[key] < parent[key]) == higher_is_better
        and child[key] != parent[key]]
    if child["mean_hd95_mm"] > parent["mean_hd95_mm"]:
        worse.append(f"mean HD95 {parent['mean_hd95_mm']:.1f} -> {child['mean_hd95_mm']:.1f} mm")
    t2 = f"healthy T2 phantoms with a lesion {parent['t2_negatives_with_lesion']} -> {child['t2_negatives_with_lesion']}"
    if not worse:
        return f"On the held-out phantoms it is no worse than its {label} ({t2})."
    return (f"**What got worse.** On the held-out phantoms this model is worse than its {label}: " + "; ".join(worse)
            + f"; {t2}. Fine-tuning on real anatomy traded some of the phantoms' look for it; the phantom figures no longer "
            "describe how the model behaves on real scans, but a user of the bundled phantom samples will see it.")


def unaltered_regressions(parent_real: dict, child_real: dict, label: str = "parent") -> str:
    """The unaltered real scan versions on which this model reports more lesions than the one compared, said plainly."""
    worse = []
    for name, kinds in child_real["unaltered"].items():
        for kind, now in kinds.items():
            before = parent_real["unaltered"].get(name, {}).get(kind, {})
            if now.get("lesions", 0) > before.get("lesions", 0):
                sizes = ", ".join(f"{v / 1000:.2f}" for v in now.get("volumes_mm3", []))
                warned = "warned as T2-weighted" if now.get("contrast_warning") else "no contrast warning"
                worse.append(f"`{name}` {kind} {before.get('lesions', 0)} -> {now['lesions']} ({sizes} cm3; {warned})")
    if not worse:
        return f"On the unaltered real scans it reports no more lesions than its {label}."
    return (f"**What got worse on healthy real scans.** This model reports more lesions than its {label} on: "
            + "; ".join(worse) + ".")


def card_text(args: argparse.Namespace, manifest: dict[str, Any], model_file: Path, tables: dict[str, str],
              child: dict) -> str:
    return f"""# Model card: {manifest['name']} {manifest['version']}

> **Trained on synthetic data only; not for clinical use.** The training lesions are synthetic:
> drawn by a program, either in computer-generated phantoms or painted into real MRI of healthy
> volunteers. The model has never seen a real tumour. It is not a medical device and must not be
> used for diagnosis, treatment or any decision about a patient.

| | |
|---|---|
| file | `{model_file.name}` ({model_file.stat().st_size / 1e6:.1f} MB) |
| weights sha256 | `{manifest['weights_sha256']}` |
| network | BATseg: nnU-Net PlainConvUNet, topology `light` (5 stages, 16-128 features) + 1x1x1 surface-distance-field head (sigmoid, 4 class-wise channels, truncation t = 1), loss CE + Dice + mean \\|e\\|^3; same network, size and speed as {args.parent_version} |
| input | sagittal T1 post-gadolinium MRI, resampled to {manifest['input']['target_spacing']} mm (z, y, x = left-right, superior-inferior, anterior-posterior), z-score per volume |
| classes | 1 spinal meningioma, 2 ependymoma, 3 astrocytoma, 4 hemangioblastoma |
{parent_rows(args, manifest)}
| licence | BSD-3-Clause, as the project; the real backgrounds' licences are in `../shared/data/real-spine-mri/licenses` (MIT, CC BY 4.0); no real image is in this file |

## What changed from {args.parent_version}, and what it did

{what_changed(args)} Every figure below comes from
`bash scripts/train_real_anatomy_model.sh`; {args.label} and this model are scored on the same data.

{tables['before_after']}

Per held-out background (the two subjects kept out of training entirely: `sct_t1w`, the only real T1
scan with a cord mask, and `errsm_24`, a T2 scan made T1-like):

{tables['backgrounds']}

{tables['background_types']}

{tables['regressions']}

{tables['unaltered_regressions']}

Targets of issue 13 for this model:

{tables['targets']}

## Training data

{tables['training_data']}

Held out: 48 lesions inserted into `sct_t1w` (real T1, no contrast) and `errsm_24` (T2 made T1-like),
12 per type, {pairing_words(args.test_pairing)} (`--split test -n 48 --seed 2{' --types-by-background' if args.test_pairing else ''}`);
the 40 + 10 held-out phantoms of 0.6.0's card (seeds 7 and 8).
{held_out_commit_note(args)}

## Training

{tables['training']}

## Postprocessing

{tables['tuning']}

## Held-out phantoms: lesion type confusion of this model

{confusion_table(child['type_confusion'])}

## Unaltered real scans (healthy; the correct answer is 0 lesions)

{tables['unaltered']}

Every real scan of `../shared` is near-isotropic (1 mm) or a short slab: `batseg predict` says so in a
warning (`batseg/field_of_view.py`). The files carry no acquisition metadata; the T2 warning above comes from
the image itself (fluid brighter than the located cord, `batseg/cord_locator/contrast_check.py`), and a DICOM
series or BIDS sidecar whose echo time says T2 gives one too (`batseg/acquisition.py`). "unchecked": the
locator found no cord to measure, and the report says that the contrast could not be checked.

## Limitations

- Synthetic lesions only. Real tumours differ: they displace and expand the cord, have oedema, flow voids,
  dural tails and enhancement patterns that the inserter does not draw. The held-out figures measure how well
  the model finds *these* synthetic lesions in real anatomy it has not seen, not accuracy on patients.
- The only real T1 backgrounds are one 76 mm cervical crop (held out) and a 16 mm axial slab; most real anatomy
  seen in training is T2 made T1-like, whose bone marrow keeps T2's intermediate signal.
- Trained at twice the paper's in-plane spacing (0.94 mm) for CPU speed, on a CPU budget.
{reproduce_text(args)}
"""


def parent_rows(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    """The card's parent row; a soup's also names its members and the model it is compared with."""
    if not args.members:
        return f"| parent | `{Path(args.parent).name}` (sha256 `{manifest['parent']['sha256']}`), {args.parent_trained_on} |"
    members = ", ".join(f"{m['version']} (`{m['weights_sha256'][:12]}`)" for m in manifest["averaged_from"])
    return (f"| parent of every member | `{soup.parent_file(args.members)}` (sha256 `{manifest['parent']['sha256']}`) |\n"
            f"| members (version, weights sha256) | {members}: the weight average of these {len(args.members)} |\n"
            f"| compared with | `{Path(args.parent).name}`, the model it replaces ({args.parent_trained_on}) |")


def reproduce_text(args: argparse.Namespace) -> str:
    """The last limitation: the commands that rebuild every figure of the card."""
    if not args.members:
        return (f"- Reproduce every number above at commit `{args.commit}` with `../shared` beside the repository\n"
                f"  ({args.parent_source}): `{args.recipe}`.")
    return (f"- Reproduce every number above at commit `{args.commit}` with `../shared` beside the repository: the "
            "members' parent from git history, each member (MEMBER_k: its work folder), then the average, its "
            f"tuning, the evaluation of it and of the model it replaces, and this card:\n\n```\n{args.recipe}\n```")


def draw_of(work: Path, seed: int, train_opts: str) -> dict[str, Any]:
    """One fine-tuning's training data, read from its work folder (real split and replayed phantoms)."""
    real_cases, roles = training_roles(work, train_opts)
    return {"real_cases": real_cases, "roles": roles, "seed": seed, "opts": train_opts,
            "pairing": split_pairing(work, "real_train"), "phantom_cases": phantom_cases(work)}


def draw_bullets(draw: dict[str, Any]) -> str:
    """The two kinds of training case of one draw, with the commands that made them."""
    options = (f" {draw['opts']}" if draw["opts"] else "") + (" --types-by-background" if draw["pairing"] else "")
    return f"""- {draw['real_cases']} cases on **real healthy backgrounds** (`python scripts/make_real_insertions.py --split train -n {draw['real_cases']} --seed {draw['seed']}{options}`):
  the subjects `sct_t2`, `errsm_11`, `errsm_18`, `errsm_21` of `../shared/data/real-spine-mri` (T2-weighted, 1 mm),
  each case resliced to a random clinical sagittal grid (0.4-0.8 mm in-plane, 3.0-4.2 mm slices, tilt up to 6
  degrees, 60-100% of the head-foot extent); {draw['roles']}; {pairing_words(draw['pairing'])}. The lesion geometry, signal and
  companions follow METHOD.md section 6 relative to the manual cord mask (insertion.py's docstring lists what is not
  modelled: no cord displacement or expansion beyond the lesion, no flow voids or dural tails).
- {draw['phantom_cases']} **phantoms** (`batseg phantom -n {draw['phantom_cases']} --seed 2026 --t2-negative-fraction 0.125`), replayed so the phantom
  domain is not forgotten."""


def training_data_text(args: argparse.Namespace) -> str:
    """The card's training data: one draw, or each soup member's."""
    if not args.members:
        draw = args.draw
        return f"Synthetic lesions only. {draw['real_cases'] + draw['phantom_cases']} training cases:\n{draw_bullets(draw)}"
    parts = [f"Synthetic lesions only. Each of the {len(args.members)} members was fine-tuned from "
             f"`{soup.parent_file(args.members)}` on its own draw:"]
    for member, draw in zip(args.members, args.member_draws):
        parts.append(f"**{member.placeholder}** ({member.manifest['version']}, run at commit `{member.commit}`): "
                     f"{draw['real_cases'] + draw['phantom_cases']} training cases:\n{draw_bullets(draw)}")
    return "\n\n".join(parts)


def training_text(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    """The card's exact training commands and budget: one fine-tuning, or each member's and the average."""
    training = manifest["training"]
    budget = (f"Budget: {args.epochs} epochs x {args.iters} iterations, batch 4, patch 16 x 64 x 64, foreground "
              f"oversampling 0.5,\nlearning rate {training.get('learning_rate'):g} (poly), seed 1, a 2-core CPU; "
              "the parent's plans, loss and head.")
    if not args.members:
        return ("Exact command (recorded in the manifest; WORK_DIR is the recipe's work folder), run at commit "
                f"`{args.commit}`:\n\n```\n{' '.join(training.get('command', []))}\n```\n\n{budget}")
    commands = "\n\n".join(" ".join(member["command"] or []) for member in manifest["averaged_from"])
    budgets = {m.placeholder: tuple((m.manifest.get("training") or {}).get(k) for k in
                                    ("epochs_completed", "iterations_per_epoch", "learning_rate")) for m in args.members}
    alike = ("Each member alike." if len(set(budgets.values())) == 1 else "The members' budgets differ (epochs, "
             "iterations, learning rate): " + "; ".join(f"{name} {value}" for name, value in budgets.items()) + ".")
    files = " ".join(f"{m.placeholder}/{args.name}.batseg" for m in args.members)
    return (f"Each member's exact command (recorded in the manifest under `averaged_from`; MEMBER_k is its work "
            f"folder):\n\n```\n{commands}\n```\n\n{budget} {alike}\n\nThen, at commit `{args.commit}`, "
            f"the weights averaged (`batseg/training/weight_average.py`: the mean of every tensor; the members share "
            f"their parent, so their weights lie in one basin) and the postprocessing chosen for the average:\n\n"
            f"```\nbatseg average {files} -o WORK_DIR/{args.name}.batseg --version {args.version}\n```")


def recipe_line(args: argparse.Namespace) -> str:
    """The train_real_anatomy_model.sh call (its environment knobs) that rebuilds this model and its card."""
    if args.members:
        return soup.soup_recipe(args.members, args.version, Path(args.parent).name)
    # A phantom-only parent is the script's default (0.6.0 from git history); a later one is shipped.
    knobs = [] if args.parent_phantoms_only else [f"PARENT=BATsegSlicer/Resources/Models/{Path(args.parent).name}"]
    knobs += [f"VERSION={args.version}", f"TRAIN_SEED={args.draw['seed']}"]
    knobs += [f"TRAIN_CASES={args.draw['real_cases']}"] if args.draw["real_cases"] != 240 else []
    knobs += [f"PHANTOM_CASES={args.draw['phantom_cases']}"] if args.draw["phantom_cases"] != 140 else []
    knobs += ["TYPES_BY_BACKGROUND=1"] if args.draw["pairing"] else []
    knobs += [f'TRAIN_OPTS="{args.draw["opts"]}"'] if args.draw["opts"] else []
    return " ".join(knobs) + " bash scripts/train_real_anatomy_model.sh WORK_DIR"


def pairing_words(types_by_background: bool) -> str:
    """How a real split spread the tumour types over its backgrounds (make_real_insertions.lesion_type)."""
    if types_by_background:
        return ("each type tied to backgrounds as the case index cycled both (on the training subjects one type per "
                "subject; held out, `sct_t1w` only meningiomas and astrocytomas)")
    return "every background carrying every type in equal numbers"


def split_pairing(work: Path, split: str) -> bool:
    """Whether the real split `split` (real_train, real_test) tied types to backgrounds; older records did."""
    record = json.loads(next((work / split).glob("*/insertions.json")).read_text())
    return bool(record.get("types_by_background", True))


def phantom_cases(work: Path) -> int:
    """How many phantoms were replayed (the phantom training set's case count)."""
    return int(json.loads(next((work / "phantoms").glob("*/dataset.json")).read_text())["numTraining"])


def held_out_commit_note(args: argparse.Namespace) -> str:
    """Where the held-out insertions come from: 0.7.0's were drawn before a fix of the generator."""
    if args.parent_phantoms_only:
        return ("The held-out insertion data were generated at commit fb1afb9; the generator was corrected after "
                "that (a tilted grid no longer has empty corners, a meningioma's label never takes a cord voxel), so "
                "a rerun at a later commit draws slightly different held-out cases.")
    note = (f"All data, held-out cases included, were generated at commit `{args.commit}`; the {args.label} is scored "
            "on them by the same commands, so both columns compare the same cases under the same code. ")
    if args.members:
        return note + args.compared_to_own_card
    if args.parent_version == "0.7.0":
        return note + ("The parent's own card scored it on a draw made at commit fb1afb9, before a fix of the generator "
                       "(tilted grids then had zero wedges in their corners, which shift the whole-scan z-score); on "
                       "this draw it scores lower. `docs/real_anatomy.md` compares both models on both draws.")
    return note + ("The parent's own card scored it on a different held-out draw; its figures there and here differ, "
                   "and only the columns of this card compare like with like (`docs/real_anatomy.md`).")


def what_changed(args: argparse.Namespace) -> str:
    """The card's opening paragraph: what the parent lacked and what this fine-tuning changed."""
    if args.parent_phantoms_only:
        return (f"{args.parent_version} had learnt the phantoms' look: on lesions inserted into real scans it found few "
                "and typed them at random, and it reported lesions on healthy real scans. This model is "
                f"{args.parent_version} fine-tuned on synthetic lesions of the four types painted into real healthy "
                "scans (`batseg/phantoms/insertion.py`, `batseg/phantoms/real_grid.py`), with phantoms replayed.")
    if args.members and getattr(args, "same_weights", False):
        return (f"This model has the weights of {args.parent_version}, the weight average (`batseg average`) of "
                f"{len(args.members)} fine-tunings of `{soup.parent_file(args.members)}` (data seeds "
                f"{', '.join(str(draw['seed']) for draw in args.member_draws)}). Only its postprocessing is new: "
                "`batseg tune-postprocess` now also chooses the least mean tumour probability a lesion needs to be "
                "kept (`batseg/postprocess.py`) and the least enhancement, its median signal over the spinal cord's "
                "(`batseg/enhancement.py`), and on the same validation cases chose "
                f"{args.chosen_postprocessing}.")
    if args.members:
        seeds = ", ".join(str(draw["seed"]) for draw in args.member_draws)
        return (f"This model is the weight average (`batseg average`, a \"model soup\": Wortsman et al., ICML 2022) of "
                f"{len(args.members)} fine-tunings of `{soup.parent_file(args.members)}`, each on its own draw of synthetic "
                f"cases in real healthy scans (data seeds {seeds}) with phantoms replayed, at the same budget; "
                f"{args.parent_version}, the model it replaces, is one of them. One network, the same size and speed: "
                "the average damps what each fine-tuning learnt by chance of its draw.")
    draw = args.draw
    return (f"{args.parent_version} was already fine-tuned on synthetic lesions in real healthy scans. This model is "
            f"{args.parent_version} fine-tuned again on a new draw of such cases (seed {draw['seed']}, options "
            f"`{draw['opts'] or 'the defaults'}`, {pairing_words(draw['pairing'])}), with "
            f"{draw['phantom_cases']} phantoms replayed: {draw['roles']}.")


def training_roles(work: Path, train_opts: str) -> tuple[int, str]:
    """(cases, a sentence on their roles) from the real training split's insertions.json."""
    record = json.loads(next((work / "real_train").glob("*/insertions.json")).read_text())
    roles = [case["role"] for case in record["cases"].values()]
    count = len(roles)
    negatives = sum(role.startswith("T2 negative") for role in roles)
    healthy = roles.count("healthy")
    where = ("at the whole field of view" if "--negative-whole-fov" in train_opts else "cropped to the cord rows")
    native = " (part of them on the scan's own 1 mm grid)" if "--negative-native-share" in train_opts else ""
    tissue = sum("tissue at T1 levels" in str(case.get("contrast", "")) for case in record["cases"].values())
    # Options of make_real_insertions.py that shape every case, said in words for the card.
    extras = ([f"{tissue} of the T1-like cases also had the tissue outside the canal moved to random T1 levels "
               "(`real_grid.t1_tissue_levels`), so that the cord stands where it stands after a real T1 scan's "
               "z-score"] if tissue else [])
    if "--ap-window-share" in train_opts:
        extras.append("a share of all cases was cut to a random 40-150 mm anterior-posterior window around the cord "
                      "(`real_grid.anterior_posterior_window`: the small fields of view of real protocols)")
    return count, (f"{negatives} of them ({100 * negatives / count:.0f}%) kept T2 as wrong-contrast negatives "
                   f"without lesion, {where}{native}; the others made T1-like (dark CSF around the cord), "
                   f"{healthy} of those left healthy and {count - negatives - healthy} with one synthetic lesion"
                   + "".join(f"; {extra}" for extra in extras))


def portable_command(command: list[str], work: Path | dict[Path, str]) -> list[str]:
    """The training command with this machine's folders replaced by placeholders (WORK_DIR for a
    single work folder, or `work`'s mapping, e.g. a soup's members) and repository paths made relative."""
    folders = work if isinstance(work, dict) else {work: "WORK_DIR"}
    pairs = [(str(folder.resolve()), name) for folder, name in folders.items()]
    pairs += [(str(folder), name) for folder, name in folders.items()] + [(str(REPO) + "/", "")]
    # A folder inside the repository may be written relative to it (the recipe runs from the repository root).
    pairs += [(str(folder.resolve().relative_to(REPO)), name) for folder, name in folders.items()
              if folder.resolve().is_relative_to(REPO)]
    pairs.sort(key=lambda pair: -len(pair[0]))  # the longest first: a folder inside another keeps its own name
    parts = []
    for part in command:
        for machine, name in pairs:
            part = part.replace(machine, name)
        parts.append(part)
    return parts


def portable_paths(value: Any, work: Path | dict[Path, str]) -> Any:
    """`value` (a manifest section) with every string's machine folders replaced as portable_command does."""
    if isinstance(value, dict):
        return {key: portable_paths(item, work) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_paths(item, work) for item in value]
    return portable_command([value], work)[0] if isinstance(value, str) else value


def own_card_agreement(manifest: dict[str, Any], real: dict[str, Any], version: str) -> str:
    """Whether the compared model scores here what its own card says (the same seeded held-out draw)."""
    own = (manifest.get("metrics") or {}).get("held_out_real_backgrounds")
    here = real["insertions"]["summary"]
    if own is None:
        return f"{version}'s own card has no held-out real-background figures to compare with."
    keys = ("lesions", "detected", "large_detected", "large_type_accuracy", "false_lesions_per_scan")
    differ = [key for key in keys if own.get(key) != here.get(key)]
    if not differ:
        return (f"{version} scores here exactly what its own card says on its held-out draw (the same seeded cases "
                "regenerated by the same code).")
    return (f"{version}'s own card scored it on a different held-out draw ({', '.join(differ)} differ); only the "
            "columns of this card compare like with like.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--parent", required=True)
    parser.add_argument("--parent-commit", default="f97b9ee", help="a commit that holds the parent file")
    parser.add_argument("--version", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--iters", type=int, required=True)
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the real training split")
    parser.add_argument("--train-opts", default="", help="extra options the real training split was made with")
    parser.add_argument("--members", default="", help="a soup's member work folders, space-separated (MEMBERS)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    args.commit = (args.work / "COMMIT").read_text().strip()[:7]
    parent_manifest = read_manifest(args.parent)
    args.parent_version = str(parent_manifest.get("version"))
    args.parent_phantoms_only = "held_out_real_backgrounds" not in (parent_manifest.get("metrics") or {})
    args.parent_trained_on = ("trained on phantoms only" if args.parent_phantoms_only else
                              "trained on phantoms and synthetic lesions in real healthy scans (its own card)")
    args.parent_source = (f"the parent {args.parent_version} file comes from git history: "
                          f"`git show {args.parent_commit}:{args.parent}`" if args.parent_phantoms_only else
                          f"the parent is the shipped `{parent_manifest.get('name')}-{args.parent_version}.batseg` "
                          "of that commit")
    args.members = soup.read_members([Path(m) for m in args.members.split()], args.name)
    args.label = "previous" if args.members else "parent"
    if args.members:
        args.member_draws = [draw_of(m.folder, int(m.knobs["TRAIN_SEED"]), m.knobs.get("TRAIN_OPTS", ""))
                             for m in args.members]
    else:
        args.draw = draw_of(args.work, args.train_seed, args.train_opts)
    args.test_pairing = split_pairing(args.work, "real_test")
    args.recipe = recipe_line(args)  # before anything is written: it asks git where the members' parent is
    parent, child = _phantoms(args.work, "parent"), _phantoms(args.work, args.name)
    parent_real, child_real = _real(args.work, "parent"), _real(args.work, args.name)
    child_real["training_backgrounds"] = ["sct_t2", "errsm_11_t2", "errsm_18_t2", "errsm_21_t2"]
    source = args.work / f"{args.name}-tuned.batseg"
    manifest = read_manifest(source)
    args.same_weights = manifest["weights_sha256"] == parent_manifest.get("weights_sha256")
    chosen = manifest.get("postprocessing") or {}
    args.chosen_postprocessing = (f"a minimum volume of {chosen.get('min_volume_mm3'):g} mm3, a minimum tumour "
                                  f"probability of {chosen.get('min_tumour_probability') or 0:g}, a minimum enhancement of "
                                  f"{chosen.get('min_enhancement') or 0:g} times the cord and one type per lesion "
                                  f"{'on' if chosen.get('one_type_per_lesion') else 'off'}")
    folders = soup.folder_names(args.members, args.work)
    training = portable_paths(manifest["training"], folders)  # its command, sources, the lineage's rounds
    metrics = {"held_out_phantoms": child, "held_out_real_backgrounds": child_real["insertions"]["summary"],
               "unaltered_real_scans": child_real["unaltered"], f"{args.label}_held_out_phantoms": parent,
               f"{args.label}_held_out_real_backgrounds": parent_real["insertions"]["summary"]}
    args.compared_to_own_card = own_card_agreement(parent_manifest, parent_real, args.parent_version)
    target = MODELS / f"{args.name}-{args.version}.batseg"
    if target.exists() and not args.force:
        raise SystemExit(f"{target} already exists: choose another VERSION, or pass --force to replace it")
    # The tables first: a failure there must not leave a model file without its card.
    label = args.label
    tables = {"before_after": before_after_table(parent, child, parent_real, child_real, label),
              "backgrounds": background_table(parent_real, child_real, label),
              "background_types": background_type_table(parent_real, child_real, label),
              "unaltered": unaltered_table(parent_real, child_real, label),
              "targets": target_lines(parent, child, child_real, label),
              "regressions": regressions(parent, child, label),
              "unaltered_regressions": unaltered_regressions(parent_real, child_real, label),
              "training_data": training_data_text(args),
              "tuning": tuning_section(args.work, args.name).replace(
                  "validation phantoms (`batseg phantom -n 20 --seed 11`, neither training nor test cases)",
                  "validation cases (20 phantoms of `batseg phantom -n 20 --seed 11` and 24 real-background "
                  "insertions of `make_real_insertions.py --seed 3` on the training subjects; no test case)")}
    # nnU-Net's plans carry the training command too (batseg_training): the same folders, made portable.
    updates = {"metrics": metrics, "version": args.version, "training": training,
               "nnunet": portable_paths(manifest["nnunet"], folders), "disclaimer": DISCLAIMER, "default": True}
    if "averaged_from" in manifest:  # a soup's members: their commands name their work folders
        updates["averaged_from"] = portable_paths(manifest["averaged_from"], folders)
    with_manifest_updates(source, updates, target, overwrite=True)
    written = read_manifest(target)
    tables["training"] = training_text(args, written)
    card = MODELS / f"{args.name}-{args.version}.md"
    card.write_text(card_text(args, written, target, tables, child))
    shutil.copyfile(args.work / f"eval_{args.name}.png", MODELS / f"{args.name}-{args.version}.eval.png")
    print(f"wrote {target} (sha256 {sha256_file(target)}) and {card}")


if __name__ == "__main__":
    main()
