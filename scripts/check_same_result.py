"""Do the accelerated inference paths give the same labels as the unaccelerated one? (issue 19)

Runs `batseg predict` (file to labels + report, the model's own postprocessing) once per path over
the same held-out cases, then compares each path's label maps with the reference path's per case
(`batseg.same_result`: identical, or Dice >= 0.99 per class with every reference lesion kept).
Paths, each differing from the reference by the levers it names, so a difference is pinned to its lever:

- reference: PyTorch fp32, nnU-Net's tiling (training patch, step 0.5), the whole volume;
- engine:    ONNX Runtime (fp32), the same tiles, the whole volume;
- tile:      ONNX Runtime, "auto" tiles on the whole volume (`sliding_window.choose_tile`: the training
             patch where it fits the activation budget, so then the same as engine; else the cheapest tile);
- crop:      ONNX Runtime, nnU-Net's tiles, the cascade crop around the cord the locator finds;
- default:   what `batseg predict` does by default (the cascade crop, its box as one tile).

    python scripts/check_same_result.py --model MODEL.batseg --images WORK_DIR/test/Dataset502_BATsegPhantomsTest/imagesTr \\
        --out OUT [--cases 6] [--threads 2] [--paths reference,engine,tile,crop,default] [--json OUT.json]

Prints one table row per path and case and a verdict per path, with the largest difference of
a tumour class probability from the reference's (`--save-probabilities`; it still speaks where a
weak model's labels are all background); exits 0 whatever the verdict (it is a measurement). The
seconds are each report's, read to written, probability map included. Outputs of earlier runs in OUT are reused only with --reuse.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from batseg.same_result import compare_labels, summarise

PATHS: dict[str, list[str]] = {
    "reference": ["--backend", "torch", "--tile", "patch", "--no-crop"],
    "engine": ["--backend", "onnx", "--tile", "patch", "--no-crop"],
    "tile": ["--backend", "onnx", "--tile", "auto", "--no-crop"],
    "crop": ["--backend", "onnx", "--tile", "patch"],
    "default": [],
}


def run_path(name: str, model: str, inputs: Path, out: Path, threads: int, reuse: bool) -> dict[str, float]:
    """`batseg predict` along one path into OUT/NAME; returns each case's seconds (the report's, read to write)."""
    target = out / name
    if not (reuse and target.is_dir()):
        if target.exists():
            shutil.rmtree(target)
        command = [sys.executable, "-m", "batseg", "predict", "-i", str(inputs), "-o", str(target), "--model", model, "--device", "cpu",
                   "--threads", str(threads), "--progress", "quiet", "--save-probabilities", *PATHS[name]]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"path {name} failed: {done.stderr.strip()[-1500:]}")
    seconds = {}
    for report in sorted(target.glob("*.report.json")):
        data = json.loads(report.read_text())
        seconds[report.name[: -len(".report.json")]] = float(data.get("processing_seconds", float("nan")))
    return seconds


def probability_difference(reference: Path, other: Path) -> float:
    """The largest difference of any tumour class probability at any voxel between two paths' outputs.

    It says how near a path is even where the labels cannot tell (a model whose tumour
    probabilities stay under one half everywhere gives all-background labels on every path)."""
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(reference)))
    second = sitk.GetArrayFromImage(sitk.ReadImage(str(other)))
    return float(np.abs(first.astype(np.float32) - second.astype(np.float32)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model file (.batseg)")
    parser.add_argument("--images", type=Path, required=True, help="folder of held-out images (*.nii.gz)")
    parser.add_argument("--out", type=Path, required=True, help="folder for each path's outputs")
    parser.add_argument("--cases", type=int, default=6, help="first N images (sorted by name)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, the first is the reference ({', '.join(PATHS)})")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse a path's outputs already in OUT")
    args = parser.parse_args()
    paths = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = [name for name in paths if name not in PATHS]
    if unknown or len(paths) < 2:
        sys.exit(f"give a reference and at least one other path, from {', '.join(PATHS)}")
    images = sorted(args.images.glob("*.nii.gz"))[: args.cases]
    if not images:
        sys.exit(f"no *.nii.gz image in {args.images}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="batseg-same-result-") as tmp:
        inputs = Path(tmp)
        for image in images:  # the chosen cases only, as one input folder
            (inputs / image.name).symlink_to(image.resolve())
        seconds = {name: run_path(name, args.model, inputs, args.out, args.threads, args.reuse) for name in paths}
    reference = paths[0]
    cases = sorted(seconds[reference])
    rows, verdicts, deltas = [], {}, {}
    print(f"model {args.model}; {len(cases)} cases of {args.images}; {args.threads} threads; reference: {reference}")
    print("| path | case | seconds | voxels differing | Dice per class (%) | lesions kept / reference | same type | "
          "max probability difference | same result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in paths[1:]:
        agreements = []
        for case in cases:
            first = sitk.ReadImage(str(args.out / reference / f"{case}.nii.gz"))
            other = sitk.GetArrayFromImage(sitk.ReadImage(str(args.out / name / f"{case}.nii.gz")))
            agreement = compare_labels(sitk.GetArrayFromImage(first), other, tuple(reversed(first.GetSpacing())))
            agreements.append(agreement)
            delta = probability_difference(args.out / reference / f"{case}.probabilities.nii.gz",
                                           args.out / name / f"{case}.probabilities.nii.gz")
            deltas.setdefault(name, []).append(delta)
            rows.append({"path": name, "case": case, "seconds": seconds[name].get(case),
                         "reference_seconds": seconds[reference].get(case), "max_probability_difference": delta,
                         **agreement.as_dict()})
            dice = ", ".join(f"{key} {100 * value:.2f}" for key, value in agreement.dice.items()) or "-"
            print(f"| {name} | {case} | {seconds[name].get(case, float('nan')):.1f} (ref. {seconds[reference].get(case, float('nan')):.1f}) | "
                  f"{agreement.differing_voxels} | {dice} | {agreement.kept_lesions} / {agreement.reference_lesions} | "
                  f"{agreement.same_type_lesions} | {delta:.2g} | {'yes' if agreement.same_result else 'NO'} |")
        verdicts[name] = {**summarise(agreements), "max_probability_difference": max(deltas[name])}
    print()
    for name, summary in verdicts.items():
        lowest = ", ".join(f"{key} {100 * value:.2f}" for key, value in summary["lowest_dice"].items()) or "-"
        print(f"{name}: same result on {summary['same_result']}/{summary['cases']} cases (identical {summary['identical']}); "
              f"lowest Dice per class: {lowest}; lesions kept {summary['kept_lesions']}/{summary['reference_lesions']}; "
              f"largest probability difference {summary['max_probability_difference']:.2g}; "
              f"median seconds {np.nanmedian(list(seconds[name].values())):.1f} vs reference "
              f"{np.nanmedian(list(seconds[reference].values())):.1f}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "reference": reference, "threads": args.threads,
                                         "rows": rows, "summary": verdicts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
