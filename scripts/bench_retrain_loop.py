"""Benchmark of the correct-export-retrain loop (issue 16): does the model get better where it
was poor, round after round, without losing what it knew?

    python scripts/bench_retrain_loop.py --work WORK_DIR

(about 35 min on an otherwise idle 2-core CPU with the defaults; needs slicer-core for the headless scene:
`pip install slicer-core`, which `bash scripts/setup.sh --with-tests` installs.)

What it does, with nothing but the project's own code:
1. Data (generated into WORK_DIR/data, reused by a rerun):
   - the shifted domain: phantoms acquired by "site B", a scanner profile the shipped model was
     never trained on: a posterior spine-array coil with a steep sensitivity fall-off and a
     strong residual bias field, no intensity correction (`SITE_B`, drawn per case from the case
     seed; every other acquisition parameter, the anatomy and the lesions are drawn as
     `batseg phantom` draws them). A pool of ROUNDS x CASES_PER_ROUND cases (seed 61) plays the
     clinic's new scans, a disjoint held-out set (seed 62) measures the domain.
     Why this profile: it is the candidate on which the shipped model lost most (see
     docs/retrain_loop.md: mean Dice 13 % against 65 % on the same cases with the standard profile);
   - the original domain: the model card's held-out phantoms (`batseg phantom -n 40 --seed 7`);
   - replay data: the shipped model's phantoms (`batseg phantom -n 140 --seed 2026
     --t2-negative-fraction 0.125`); its other training data, lesions painted into real scans of
     ../shared, is not replayed (it needs ../shared, and 0.7.0's manifest records no recipe for it).
2. Round 0: the shipped default model (`"default": true`) on both held-out sets.
3. Each round: `batseg predict` the round's new site-B cases with the current model (what the
   user sees); load each image into a headless MRML scene (slicer-core), make the segmentation
   from the AI's labels exactly as the module's Logic does (`create_tumour_segmentation`,
   `remember_ai_output`), then "correct" it: every tumour segment is replaced by the ground
   truth, as a reviewer painting in the Segment Editor would (`updateSegmentBinaryLabelmapFromArray`);
   export with the module's own `export.export_case` into ONE export folder that grows round
   after round, as the panel's does; fine-tune with `batseg train --finetune-from CURRENT --data
   EXPORT_FOLDER`, the parent's budget except --epochs (12 instead of fine-tuning's 50; round 1 passes
   --replay-data, since 0.7.0 records no usable lineage; round 2 passes none, so its replay comes
   from the lineage round 1 recorded); then score the new model on both held-out sets.
4. Prints a markdown table (and writes WORK_DIR/results.json): per round the model, the
   fine-tuning's wall time and iterations, the whole round's wall time, and on each held-out set
   the mean Dice over tumour types, lesion detection rate and type accuracy of `batseg evaluate`;
   then the issue's targets, met or not: the shifted domain improves after each round, the
   original domain loses at most 2 Dice points after the last round.

Every figure printed comes from this run. Synthetic data only; nothing here is clinical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "BATsegSlicer"

# Site B's acquisition (batseg.phantoms.acquisition.OVERRIDABLE fields), drawn per case in these
# ranges. The standard profile draws coil floor 0.25-0.7, coil length 50-140 mm, bias 5-25 %.
SITE_B = {"coil_floor": (0.03, 0.10), "coil_length_mm": (20.0, 35.0), "bias_amplitude": (0.35, 0.50)}
_SITE_B_STREAM = 0x51B  # SeedSequence key of the profile draw (independent of the case's own streams)
SHIFTED_POOL_SEED, SHIFTED_HELDOUT_SEED = 61, 62
STANDARD_HELDOUT_SEED = 7  # the model card's held-out phantoms
REPLAY_SEED, REPLAY_T2_FRACTION = 2026, 0.125  # the shipped model's replayed phantoms
MAX_DICE_LOSS = 0.02  # the original domain may lose at most 2 Dice points
REVIEWER = "ground truth (bench_retrain_loop.py)"
MARKER = ".bench_retrain_loop"


# Data ------------------------------------------------------------------------------------------


def site_b_acquisition(case_seed: int) -> dict[str, float]:
    """Site B's acquisition overrides for one case, drawn from its seed."""
    rng = np.random.default_rng(np.random.SeedSequence([int(case_seed), _SITE_B_STREAM]))
    return {key: float(rng.uniform(low, high)) for key, (low, high) in SITE_B.items()}


def _complete(folder: Path, num_cases: int) -> bool:
    """A dataset written to the end (dataset.json is its last file) with `num_cases` cases."""
    try:
        return json.loads((folder / "dataset.json").read_text())["numTraining"] == num_cases
    except (OSError, ValueError, KeyError):
        return False


def write_site_b_dataset(folder: Path, num_cases: int, seed: int, matrix: int | None = None,
                         n_slices: int | None = None) -> Path:
    """`num_cases` site-B phantoms in nnU-Net's raw layout (the case plan of `batseg phantom
    -n num_cases --seed seed`); an existing complete folder is reused."""
    import SimpleITK as sitk

    from batseg.labels import NNUNET_LABELS
    from batseg.phantoms.case import generate_case
    from batseg.phantoms.dataset import plan_dataset

    if _complete(folder, num_cases):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for name in ("imagesTr", "labelsTr"):
        (folder / name).mkdir(parents=True)
    profiles = {}
    for plan in plan_dataset(num_cases, seed, healthy_fraction=0.1):
        acquisition = site_b_acquisition(plan.seed)
        case = generate_case(plan.seed, plan.tumour_types or None, healthy=not plan.tumour_types,
                             matrix=matrix, n_slices=n_slices, acquisition=acquisition)
        sitk.WriteImage(case.image, str(folder / "imagesTr" / f"{plan.case_id}_0000.nii.gz"), True)
        sitk.WriteImage(case.label, str(folder / "labelsTr" / f"{plan.case_id}.nii.gz"), True)
        profiles[plan.case_id] = {"seed": plan.seed, "tumour_types": case.meta["tumour_types"], **acquisition}
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1Gd"}, "labels": dict(NNUNET_LABELS), "numTraining": num_cases,
        "file_ending": ".nii.gz", "name": "BATseg phantoms, site B",
        "description": "Synthetic phantoms acquired with site B's coil profile (scripts/bench_retrain_loop.py); "
                       "synthetic data, not for clinical use.",
        "bench_retrain_loop": {"seed": seed, "profile": {k: list(v) for k, v in SITE_B.items()}, "cases": profiles},
    }, indent=2) + "\n")
    return folder


def batseg_phantoms(out: Path, num_cases: int, seed: int, workers: int, t2_fraction: float = 0.0,
                    log: Path | None = None, matrix: int | None = None, n_slices: int | None = None) -> Path:
    """`batseg phantom -o out -n num_cases --seed seed` (reused when complete)."""
    folder = out / "Dataset501_BATsegPhantoms"
    if not _complete(folder, num_cases):
        command = ["phantom", "-o", str(out), "-n", str(num_cases), "--seed", str(seed), "--workers", str(workers),
                   "--overwrite", "--progress", "quiet"]
        if t2_fraction:
            command += ["--t2-negative-fraction", str(t2_fraction)]
        for option, value in (("--matrix", matrix), ("--slices", n_slices)):
            if value is not None:
                command += [option, str(value)]
        batseg(command, log)
    return folder


# Engine commands ------------------------------------------------------------------------------


def batseg(arguments: list[str], log: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Run `python -m batseg ARGUMENTS` (output to `log`); returns its wall time in seconds."""
    command = [sys.executable, "-m", "batseg", *arguments]
    start = time.perf_counter()
    if log is None:
        completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = completed.stdout
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("$ " + " ".join(command) + "\n")
            handle.flush()
            completed = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
        output = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    if completed.returncode:
        raise SystemExit(f"failed ({completed.returncode}): {' '.join(command)}\n{output[-3000:]}")
    return time.perf_counter() - start


def predict(model: Path, images: Path, out: Path, threads: int, log: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    batseg(["predict", "-i", str(images), "-o", str(out), "--model", str(model), "--device", "cpu",
            "--threads", str(threads), "--progress", "quiet"], log)


def evaluate(predictions: Path, labels: Path, out: Path, log: Path) -> dict[str, Any]:
    """`batseg evaluate`'s JSON, and the figures of the table."""
    out.unlink(missing_ok=True)
    batseg(["evaluate", "--pred", str(predictions), "--gt", str(labels), "-o", str(out), "--progress", "quiet"], log)
    summary = json.loads(out.read_text())["aggregate"]
    detection = summary["detection"]
    return {
        "cases": summary["n_cases"],
        "mean_dice": summary["mean_over_classes"]["dice"],
        "detection_tpr": detection["true_positive_detection_rate"],
        "detected_lesions": detection["detected_lesions"],
        "true_lesions": detection["true_lesions"],
        "false_positive_detection_rate": detection["false_positive_detection_rate"],
        "type_accuracy": detection["type_accuracy"],
        "types_correct": detection["types_correct"],
        "types_assessed": detection["types_assessed"],
        "healthy_cases_with_prediction": summary["healthy_cases_with_prediction"],
        "healthy_cases": summary["healthy_cases"],
    }


def score(model: Path, heldout: dict[str, Path], folder: Path, threads: int, log: Path) -> dict[str, Any]:
    """The model on every held-out set: {domain: figures}."""
    scores = {}
    for domain, dataset in heldout.items():
        predictions = folder / f"pred_{domain}"
        predict(model, dataset / "imagesTr", predictions, threads, log)
        scores[domain] = evaluate(predictions, dataset / "labelsTr", folder / f"eval_{domain}.json", log)
    return scores


def read_manifest(model: Path) -> dict[str, Any]:
    from batseg.model_file import verify

    return verify(model)


# The Slicer side: a headless scene and the module's export ---------------------------------------


def headless_scene() -> SimpleNamespace:
    """A real MRML scene with the logics the module uses (as Testing/slicer_module/conftest.py
    sets it up), installed as slicer.mrmlScene / slicer.modules."""
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    try:
        import slicer
    except ImportError:
        raise SystemExit("the export step needs slicer-core for a headless scene: pip install slicer-core") from None
    from BATsegSlicerLib.headless_scene import install_scene

    return install_scene(slicer)


def export_ground_truth(cases: list[str], images: Path, ai: Path, labels: Path, export_dir: Path,
                        manifest: dict[str, Any], mrml: SimpleNamespace) -> list[dict[str, Any]]:
    """Each case through the module: AI segmentation in the scene, corrected to the ground truth,
    exported with `export.export_case`. Returns per case: the export's case ID and its editing
    record (AI vs reviewed Dice per class). The exported label is checked to be the ground truth."""
    import slicer

    from BATsegSlicerLib import export
    from BATsegSlicerLib.ai_output import remember_ai_output
    from BATsegSlicerLib.segmentation import create_tumour_segmentation
    from BATsegSlicerLib.storage import read_array_on_grid
    from batseg.labels import TUMOUR_CLASSES

    exported = []
    for case in cases:
        volume = mrml.volumes.AddArchetypeVolume(str(images / f"{case}_0000.nii.gz"), case, 0)
        if volume is None or volume.GetImageData() is None:
            raise SystemExit(f"Slicer could not load {case}")
        ai_labels = read_array_on_grid(str(ai / f"{case}.nii.gz"), volume)
        segmentation = create_tumour_segmentation(mrml.scene, volume, ai_labels, f"{case} BATseg")
        remember_ai_output(segmentation, volume, ai_labels, manifest)
        truth = read_array_on_grid(str(labels / f"{case}.nii.gz"), volume)
        for tumour in TUMOUR_CLASSES:  # the reviewer's correction: each segment becomes the ground truth
            segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(tumour.name)
            slicer.util.updateSegmentBinaryLabelmapFromArray((truth == tumour.value).astype(np.uint8), segmentation,
                                                             segment_id, volume)
        result = export.export_case(segmentation, volume, str(export_dir), reviewer=REVIEWER)
        if not np.array_equal(read_array_on_grid(result.files["label"], volume), truth):
            raise SystemExit(f"the export of {case} ({result.case_id}) does not hold its ground truth")
        exported.append({"case": case, "case_id": result.case_id, "editing": result.provenance["editing"],
                         "notes": result.notes})
        mrml.scene.Clear(0)
    return exported


# Rounds --------------------------------------------------------------------------------------


def finetune(parent: Path, export_dir: Path, output: Path, replay: Path | None, args: argparse.Namespace,
             workdir: Path, log: Path) -> dict[str, Any]:
    """`batseg train --finetune-from parent --data export_dir`; wall time, iterations, replay counts."""
    command = ["train", "--finetune-from", str(parent), "--data", str(export_dir), "--output", str(output),
               "--epochs", str(args.epochs), "--device", "cpu", "--seed", str(args.seed), "--workdir", str(workdir), "--overwrite",
               "--progress", "json"]
    if args.iterations_per_epoch is not None:
        command += ["--iterations-per-epoch", str(args.iterations_per_epoch)]
    if replay is not None:
        command += ["--replay-data", str(replay)]
    if args.lr is not None:
        command += ["--lr", str(args.lr)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), nnUNet_def_n_proc=str(args.threads))
    logged = log.stat().st_size if log.is_file() else 0
    seconds = batseg(command, log, env)
    with open(log, encoding="utf-8", errors="replace") as handle:
        handle.seek(logged)
        plan = [line for line in handle if '"message": "fine-tuning: ' in line]
    manifest = read_manifest(output)
    training, parent_record = manifest["training"], manifest["parent"]
    return {
        "seconds": seconds,
        "command": ["batseg", *command],
        "iterations": int(training["epochs_completed"]) * int(training["iterations_per_epoch"]),
        "epochs": int(training["epochs_completed"]),
        "iterations_per_epoch": int(training["iterations_per_epoch"]),
        "batch_size": int(training["batch_size"]),
        "learning_rate": training["learning_rate"],
        "new_cases": parent_record["new_cases"],
        "replay_cases": parent_record["replay_cases"],
        "earlier_round_cases": parent_record.get("earlier_round_cases", 0),
        "new_case_repeats": parent_record.get("new_case_repeats"),
        "model": f"{manifest['name']} {manifest['version']}",
        "announced": json.loads(plan[-1].split(" ", 1)[1])["message"] if plan else None,
    }


def mean_defined(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    from batseg.models import default_model_path

    work = Path(args.work).expanduser().resolve()
    data, run = work / "data", work / "run"
    logs = run / "logs"
    if run.exists():
        if not (run / MARKER).is_file():
            raise SystemExit(f"{run} exists and was not made by this script: choose another --work folder")
        shutil.rmtree(run)  # an earlier run's rounds (the data folder is reused)
    logs.mkdir(parents=True)
    (run / MARKER).write_text("rounds of scripts/bench_retrain_loop.py; replaced by its next run\n")
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {text}", flush=True)

    say("data: site-B pool and held-out cases, the card's held-out phantoms, the replay phantoms")
    pool = write_site_b_dataset(data / "shifted_pool", args.rounds * args.cases_per_round, SHIFTED_POOL_SEED,
                                args.matrix, args.slices)
    heldout = {
        "shifted": write_site_b_dataset(data / "shifted_heldout", args.heldout_shifted, SHIFTED_HELDOUT_SEED,
                                        args.matrix, args.slices),
        "original": batseg_phantoms(data / "standard_heldout", args.heldout_standard, STANDARD_HELDOUT_SEED,
                                    args.threads, log=logs / "data.log", matrix=args.matrix, n_slices=args.slices),
    }
    replay = batseg_phantoms(data / "replay", args.replay, REPLAY_SEED, args.threads, REPLAY_T2_FRACTION,
                             logs / "data.log", args.matrix, args.slices)
    data_seconds = time.perf_counter() - started

    model = Path(args.model).resolve() if args.model else default_model_path()
    manifest = read_manifest(model)
    say(f"round 0: {manifest['name']} {manifest['version']} on the held-out sets")
    round_start = time.perf_counter()
    rounds = [{"round": 0, "model": f"{manifest['name']} {manifest['version']}", "model_file": model.name,
               "scores": score(model, heldout, run / "round0", args.threads, logs / "round0.log"),
               "seconds": time.perf_counter() - round_start}]
    say(_summary(rounds[-1]))

    export_dir = run / "export"  # one folder for every round, as the Slicer panel's
    mrml = headless_scene()
    pool_cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (pool / "imagesTr").glob("*_0000.nii.gz"))
    for number in range(1, args.rounds + 1):
        round_start = time.perf_counter()
        folder = run / f"round{number}"
        log = logs / f"round{number}.log"
        cases = pool_cases[(number - 1) * args.cases_per_round: number * args.cases_per_round]
        images = folder / "new_images"
        images.mkdir(parents=True)
        for case in cases:
            os.symlink(pool / "imagesTr" / f"{case}_0000.nii.gz", images / f"{case}_0000.nii.gz")
        say(f"round {number}: the current model on {len(cases)} new site-B case(s), as the user sees them")
        predict(model, images, folder / "ai", args.threads, log)
        seen = evaluate(folder / "ai", pool / "labelsTr", folder / "eval_new_cases.json", log)
        say(f"round {number}: corrected to the ground truth and exported through BATsegSlicerLib.export")
        exported = export_ground_truth(cases, pool / "imagesTr", folder / "ai", pool / "labelsTr", export_dir,
                                       manifest, mrml)
        child = run / "models" / f"round{number}.batseg"
        say(f"round {number}: batseg train --finetune-from {model.name} --data {export_dir.name} "
            f"({len(exported)} new, {len(list((export_dir / 'labelsTr').glob('*.nii.gz')))} in the export folder)")
        trained = finetune(model, export_dir, child, replay if number == 1 else None, args, run / "train_work", log)
        say(f"round {number}: fine-tuned in {_minutes(trained['seconds'])}; announced before it started: "
            f"{trained['announced']}")
        model, manifest = child, read_manifest(child)
        scores = score(model, heldout, folder, args.threads, log)
        rounds.append({
            "round": number, "model": trained["model"], "model_file": child.name, "scores": scores,
            "finetune": trained, "new_cases": cases, "exported": exported,
            "ai_on_new_cases": seen,
            "ai_vs_corrected_dice": mean_defined([mean_defined(list(e["editing"]["dice_ai_vs_reviewed"].values()))
                                                  for e in exported if e["editing"]]),
            "seconds": time.perf_counter() - round_start,
        })
        say(_summary(rounds[-1]))
    results = {
        "command": ["python", "scripts/bench_retrain_loop.py", *sys.argv[1:]],
        "settings": {k: v for k, v in vars(args).items() if k != "work"},
        "site_b_profile": {k: list(v) for k, v in SITE_B.items()},
        "data_seconds": data_seconds,
        "total_seconds": time.perf_counter() - started,
        "rounds": rounds,
        "targets": targets(rounds),
        "git_commit": _git_commit(),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# Report --------------------------------------------------------------------------------------


def targets(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: the shifted domain improves after each round (mean Dice); the original
    domain loses at most 2 Dice points from round 0 to the last round."""
    out = []
    for before, after in zip(rounds, rounds[1:]):
        a, b = before["scores"]["shifted"]["mean_dice"], after["scores"]["shifted"]["mean_dice"]
        out.append({"target": f"shifted domain improves in round {after['round']}",
                    "figures": f"mean Dice {_pct(a)} -> {_pct(b)}", "met": a is not None and b is not None and b > a})
    if len(rounds) > 1:
        a, b = rounds[0]["scores"]["original"]["mean_dice"], rounds[-1]["scores"]["original"]["mean_dice"]
        met = a is not None and b is not None and b >= a - MAX_DICE_LOSS - 1e-12
        out.append({"target": f"original domain loses at most {MAX_DICE_LOSS * 100:g} Dice points after "
                              f"{rounds[-1]['round']} round(s)",
                    "figures": f"mean Dice {_pct(a)} -> {_pct(b)}", "met": met})
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _summary(entry: dict[str, Any]) -> str:
    s, o = entry["scores"]["shifted"], entry["scores"]["original"]
    return (f"round {entry['round']} ({entry['model']}): site-B Dice {_pct(s['mean_dice'])}, "
            f"original Dice {_pct(o['mean_dice'])}")


def markdown_table(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    s0, o0 = rounds[0]["scores"]["shifted"], rounds[0]["scores"]["original"]
    lines = [
        f"| round | model | fine-tuning wall time | iterations | round wall time | "
        f"site B ({s0['cases']} held out): mean Dice | detection | type accuracy | "
        f"original ({o0['cases']} held out): mean Dice | detection | type accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in rounds:
        s, o = entry["scores"]["shifted"], entry["scores"]["original"]
        trained = entry.get("finetune")
        lines.append(
            f"| {entry['round']} | {entry['model']} | {_minutes(trained['seconds']) if trained else '-'} | "
            f"{trained['iterations'] if trained else '-'} | {_minutes(entry['seconds'])} | "
            f"{_pct(s['mean_dice'])} | {_pct(s['detection_tpr'])} | {_pct(s['type_accuracy'])} | "
            f"{_pct(o['mean_dice'])} | {_pct(o['detection_tpr'])} | {_pct(o['type_accuracy'])} |")
    lines.append("")
    lines.append("| round | new cases (in the export folder) | replayed: original, earlier rounds' | "
                 "new-case draws | AI on the round's new cases: mean Dice, detection | AI vs corrected, mean Dice |")
    lines.append("|---|---|---|---|---|---|")
    for entry in rounds[1:]:
        trained, seen = entry["finetune"], entry["ai_on_new_cases"]
        lines.append(
            f"| {entry['round']} | {len(entry['new_cases'])} ({trained['new_cases']}) | "
            f"{trained['replay_cases']}, {trained['earlier_round_cases']} | {trained['new_case_repeats']}x | "
            f"{_pct(seen['mean_dice'])}, {_pct(seen['detection_tpr'])} | {_pct(entry['ai_vs_corrected_dice'])} |")
    lines.append("")
    for target in results["targets"]:
        lines.append(f"- {target['target']}: {target['figures']}, **{'met' if target['met'] else 'NOT met'}**")
    lines.append("")
    lines.append(f"Total wall time {_minutes(results['total_seconds'])} (data generation "
                 f"{_minutes(results['data_seconds'])}, reused by a rerun).")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, metavar="WORK_DIR",
                        help="work folder: data (reused by a rerun), models, exports, logs, results.json")
    parser.add_argument("--rounds", type=int, default=2, help="correct-export-retrain rounds (default 2)")
    parser.add_argument("--cases-per-round", type=int, default=8, help="new site-B cases corrected per round (8)")
    parser.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs per round (12)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None,
                        help="training iterations per epoch (default: the parent's, as every other budget value)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: batseg train's)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for training and inference (2)")
    parser.add_argument("--seed", type=int, default=1, help="training seed (1)")
    parser.add_argument("--heldout-shifted", type=int, default=20, help="held-out site-B cases (20)")
    parser.add_argument("--heldout-standard", type=int, default=40,
                        help="held-out standard phantoms, seed 7: the model card's (40)")
    parser.add_argument("--replay", type=int, default=140,
                        help="replayed phantoms (140, the shipped model's: seed 2026, T2 share 0.125)")
    parser.add_argument("--model", default=None, help="starting model (default: the shipped default model)")
    parser.add_argument("--matrix", type=int, default=None,
                        help="force every generated case's matrix (tiny trial runs only; a data folder made with "
                             "other sizes is not reused: use a new WORK_DIR)")
    parser.add_argument("--slices", type=int, default=None, help="force every generated case's slices (tiny trials)")
    args = parser.parse_args(argv)
    for name in ("rounds", "cases_per_round", "epochs", "iterations_per_epoch", "threads", "heldout_shifted",
                 "heldout_standard", "replay"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    results = run_loop(parse_args(argv))
    print()
    print(markdown_table(results))
    return 0 if all(t["met"] for t in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
