#!/usr/bin/env python
"""Benchmark: what does BATseg's boundary head cost per training step, compared with plain nnU-Net?

Times one training step (forward + backward + optimizer step; fp16 autocast and the gradient
scaler on CUDA, exactly nnU-Net's `train_step`) of
  1. plain nnU-Net: PlainConvUNet, CE + Dice with deep supervision (BATseg's trainer with
     loss "none" is nnU-Net's trainer unchanged);
  2. BATseg with a precomputed ("free") field target: the step cost the training really pays,
     since the field is computed in the data-augmentation workers;
  3. BATseg with the field computed inside the step by scipy (`targets.surface_distance_field`
     on each sample, synchronously): the naive design this project avoids;
and measures separately
  4. the per-sample cost of the DA-worker transform (`BoundaryTargetTransform`) and of
     nnU-Net's whole augmentation pipeline per sample, and whether, with N augmentation
     workers, producing a batch (pipeline + field) hides behind one training step.

All figures come from the same run on the same machine; the steps take turns, and minima are
reported next to medians since other processes on a shared machine only ever add time. torch.compile is off (compilation
time would swamp a short benchmark; nnU-Net enables it by default on CUDA for training).

Defaults: on CPU the light topology, batch 2, patch 16x160x160; on CUDA the paper's setting
(paper topology, batch 2, patch 12x384x384).

    python scripts/bench_train_step.py                      # CPU, light
    python scripts/bench_train_step.py --device cuda        # GPU, paper
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("nnUNet_compile", "false")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "BATsegSlicer"))

from batseg.network import DEFAULT_SPACING  # noqa: E402
from batseg.targets import surface_distance_field  # noqa: E402
from batseg.training.field_transform import BoundaryTargetTransform  # noqa: E402
from batseg.training.options import TrainingOptions  # noqa: E402
from batseg.training.standalone import pipelines, standalone_trainer  # noqa: E402

# Tumour volumes (cm3) of the BATseg data, by class (METHOD.md section 6).
TUMOUR_CM3 = {1: 2.8, 2: 4.9, 3: 5.8, 4: 2.5}


def synthetic_label(shape: tuple[int, ...], spacing: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A label patch with one ellipsoidal tumour of a random class and the paper's mean volume."""
    tumour = int(rng.integers(1, 5))
    radius = (3 * TUMOUR_CM3[tumour] * 1000 / (4 * np.pi)) ** (1 / 3)  # mm, sphere of that volume
    centre = [rng.uniform(0.3, 0.7) * n for n in shape]
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre, spacing)], indexing="ij")
    # Elongated along the cord (axis 1), as spinal tumours are.
    inside = (grids[0] / radius) ** 2 + (grids[1] / (1.8 * radius)) ** 2 + (grids[2] / (0.7 * radius)) ** 2 <= 1
    label = np.zeros(shape, dtype=np.int16)
    label[inside] = tumour
    return label


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(steps: dict, device: torch.device, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call of each step, the steps taking turns so that load drift on a shared
    machine hits all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronise(device)
            start = time.perf_counter()
            step()
            synchronise(device)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def make_batches(trainer, transform: BoundaryTargetTransform, batch: int, rng: np.random.Generator):
    """(data, plain DS target, packed BATseg target, full-resolution labels) from nnU-Net's val pipeline."""
    _, val_pipeline, _ = pipelines(trainer)
    patch = tuple(trainer.configuration_manager.patch_size)
    labels = [synthetic_label(patch, transform.spacing, rng) for _ in range(batch)]
    plain, packed = [], []
    for label in labels:
        sample = val_pipeline(image=torch.zeros(1, *patch), segmentation=torch.from_numpy(label)[None])
        plain.append(sample["segmentation"])  # BATseg trainer: already packed; split below
    data = torch.randn(batch, 1, *patch)
    scales = len(plain[0])
    packed_target = [torch.stack([p[s] for p in plain]) for s in range(scales)]
    plain_target = [packed_target[0][:, :1].to(torch.int16)] + packed_target[1:]
    return data, plain_target, packed_target, labels


def bench(args: argparse.Namespace, folder: Path) -> None:
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    topology = args.topology or ("paper" if device.type == "cuda" else "light")
    patch = tuple(args.patch or ((12, 384, 384) if device.type == "cuda" else (16, 160, 160)))
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    make = lambda loss: standalone_trainer(  # noqa: E731
        TrainingOptions(loss=loss, topology=topology, progress="quiet"), patch, args.batch, device, folder
    )
    plain_trainer, batseg_trainer = make("none"), make("cubic")
    transform = batseg_trainer._boundary_transform()
    data, plain_target, packed_target, labels = make_batches(batseg_trainer, transform, args.batch, rng)
    spacing = DEFAULT_SPACING[topology]

    def plain_step() -> None:
        plain_trainer.train_step({"data": data, "target": plain_target})

    def free_step() -> None:
        batseg_trainer.train_step({"data": data, "target": packed_target})

    def naive_step() -> None:
        fields = [surface_distance_field(label, spacing) for label in labels]
        full = torch.cat([plain_target[0].float(), torch.from_numpy(np.stack(fields))], dim=1)
        batseg_trainer.train_step({"data": data, "target": [full] + plain_target[1:]})

    print(f"device {device.type}, topology {topology}, batch {args.batch}, patch {'x'.join(map(str, patch))}, "
          f"spacing {spacing} mm, torch threads {torch.get_num_threads()}")
    steps = {"plain nnU-Net": plain_step, "BATseg, free target": free_step, "BATseg, field in step": naive_step}
    times = time_interleaved(steps, device, args.warmup, args.repeats)
    results = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<24} {results[name]:9.1f} ms/step  (median of {args.repeats}; min {min(t):.1f})")

    base, fastest = results["plain nnU-Net"], {name: min(t) for name, t in times.items()}
    for name in ("BATseg, free target", "BATseg, field in step"):
        print(f"  ratio {name} / plain: {results[name] / base:6.3f} (medians), "
              f"{fastest[name] / fastest['plain nnU-Net']:6.3f} (minima, robust to load from other processes)")
    da_report(batseg_trainer, transform, labels, results["BATseg, free target"], args, rng)


def da_report(trainer, transform, labels, step_ms: float, args: argparse.Namespace, rng) -> None:
    """Per-sample cost of the field transform and of nnU-Net's DA pipeline; hidden with N workers?"""
    train_pipeline, _, initial_patch = pipelines(trainer)
    patch = tuple(trainer.configuration_manager.patch_size)
    field_ms = []
    for label in labels * max(1, args.da_samples // len(labels)):
        sample = {"segmentation": torch.from_numpy(label)[None]}
        start = time.perf_counter()
        transform(**sample)
        field_ms.append((time.perf_counter() - start) * 1000)
    pipeline_ms = []
    with torch.no_grad():
        for _ in range(args.da_samples):
            big = synthetic_label(tuple(initial_patch), transform.spacing, rng)
            sample = {"image": torch.randn(1, *initial_patch), "segmentation": torch.from_numpy(big)[None]}
            start = time.perf_counter()
            train_pipeline(**sample)  # includes the field transform at its end
            pipeline_ms.append((time.perf_counter() - start) * 1000)
    # Means, not medians: a worker's throughput is set by its average cost, and nnU-Net's random
    # augmentations (rotation, scaling, ...) make a few samples much dearer than the typical one.
    field = statistics.mean(field_ms)
    pipeline = statistics.mean(pipeline_ms)
    print(f"  DA-worker field transform        {field:9.1f} ms/sample, mean (patch {'x'.join(map(str, patch))})")
    print(f"  nnU-Net DA pipeline incl. field  {pipeline:9.1f} ms/sample, mean (input {'x'.join(map(str, initial_patch))})")
    for workers in args.workers:
        per_batch = pipeline * args.batch / workers
        verdict = "hidden behind the step" if per_batch <= step_ms else "NOT hidden: the GPU/CPU step would wait"
        print(f"  with {workers:2d} DA workers: {per_batch:8.1f} ms of augmentation per batch vs {step_ms:.1f} ms "
              f"step -> {verdict} (field share {field * args.batch / workers:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--topology", choices=("light", "paper"), default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--da-samples", type=int, default=20, help="samples timed through the DA pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 12],
                        help="DA worker counts to evaluate (nnU-Net's default is 12 per GPU)")
    with tempfile.TemporaryDirectory(prefix="batseg-bench-") as folder:  # the trainers' log folders
        bench(parser.parse_args(), Path(folder))


if __name__ == "__main__":
    main()
