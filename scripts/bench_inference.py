"""Measurements behind two inference defaults: the CPU backend and the "auto" tile size.

1. Backend: time of one forward pass of the model on the model grid of a clinical sagittal
   volume (15 x 512 x 512 voxels of 3.6 x 0.5 x 0.5 mm), PyTorch vs ONNX Runtime, same threads.
2. Tiles: the same volumes predicted with the training patch as tile (nnU-Net's sliding window,
   Gaussian blending) and with "auto" (the whole volume as one tile): voxel agreement of the
   labels, per-class Dice between the two, and the largest probability difference.

Usage: python scripts/bench_inference.py [--model M.batseg] [--inputs a.nii.gz b.nii.gz ...]
Without --model an untrained light model is written to a temporary folder (its labels are
meaningless, so its tile agreement only shows how far instance normalisation's statistics move
an untrained network); without --inputs three synthetic volumes are used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from batseg.benchmark import synthetic_volume
from batseg.inference.predictor import Predictor
from batseg.io import find_cases, read_image
from batseg.models import write_untrained_model


def forward_times(model: Path, cache: Path, threads: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per forward pass on the benchmark volume's model grid, per backend."""
    image = synthetic_volume((15, 512, 512), (3.6, 0.5, 0.5))
    times: dict[str, list[float]] = {}
    for backend in ("onnx", "torch"):
        predictor = Predictor(model, device="cpu", backend=backend, threads=threads, cache_folder=cache)
        volume = predictor.preprocess(image)[0]
        tile = np.ascontiguousarray(np.pad(volume, [(0, -n % m) for n, m in zip(volume.shape, predictor.multiple)]))
        predictor.backend.run(tile[None, None])  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            predictor.backend.run(tile[None, None])
            runs.append(time.perf_counter() - start)
        times[backend] = runs
    return times


def tile_agreement(model: Path, cache: Path, images: list[sitk.Image], threads: int) -> list[dict[str, float]]:
    """Labels and probabilities with tile "patch" vs "auto", per image."""
    whole = Predictor(model, device="cpu", backend="onnx", threads=threads, tile="auto", cache_folder=cache)
    patch = Predictor(model, device="cpu", backend="onnx", threads=threads, tile="patch", cache_folder=cache)
    rows = []
    for image in images:
        a, b = whole.predict(image, probabilities=True), patch.predict(image, probabilities=True)
        la, lb = sitk.GetArrayViewFromImage(a.labels), sitk.GetArrayViewFromImage(b.labels)
        dice = {}
        for value in range(1, 5):
            size = (la == value).sum() + (lb == value).sum()
            if size:
                dice[value] = 2 * ((la == value) & (lb == value)).sum() / size
        rows.append({
            "voxel_agreement": float((la == lb).mean()),
            "tumour_dice_between": float(np.mean(list(dice.values()))) if dice else float("nan"),
            "max_probability_difference": float(np.abs(a.probabilities - b.probabilities).max()),
            "tiles_patch": b.details["tiles"],
            "seconds_auto": a.timings["predict"],
            "seconds_patch": b.timings["predict"],
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--inputs", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = Path(args.model) if args.model else write_untrained_model(folder / "untrained.batseg", "light")
        print(f"model: {model.name}{'' if args.model else ' (untrained, random weights)'}; threads {args.threads}")
        times = forward_times(model, folder / "cache", args.threads, args.repeats)
        for backend, runs in times.items():
            print(f"forward pass, {backend:>5}: min {min(runs):.2f} s, median {statistics.median(runs):.2f} s over {len(runs)}")
        if args.inputs:
            images = [read_image(case) for path in args.inputs for case in find_cases(path)]
        else:
            images = [synthetic_volume((15, 512, 512), (3.6, 0.5, 0.5), seed=s) for s in range(3)]
        for index, row in enumerate(tile_agreement(model, folder / "cache", images, args.threads)):
            print(f"volume {index + 1}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
