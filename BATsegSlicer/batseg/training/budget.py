"""A fine-tuning's training budget, inherited from its parent, and how long it is expected to take.

Decision (issue 16, item 3): a fine-tuning runs on the parent's budget unless told otherwise:
its iterations per epoch, validation iterations, batch size, patch and foreground oversampling
(the parent's `plans["batseg_training"]` and plans configuration, as its manifest carries them).
nnU-Net's defaults (250 iterations, 50 validation iterations, oversampling 0.33) are a GPU
budget: applied to the shipped CPU-trained model (50 iterations, 5 validation iterations,
oversampling 0.5) the Slicer panel's 50 epochs became 12,500 iterations, hours on a laptop CPU,
and 0.33 oversampling is what stalled the project's short CPU runs. Only the epochs (50) and
the learning rate (1e-3) are fine-tuning's own defaults. Every value can be overridden on the
command line.

The expected duration is shown before a fine-tuning starts (the Slicer panel's confirmation,
the first log line of `batseg train --finetune-from`). It scales the parent's own measured
epoch time (`training.median_seconds_per_epoch`, recorded since issue 16) by the work per
iteration (batch x patch voxels) when the parent trained on the same kind of device; otherwise
it uses the per-voxel CPU cost measured on this project's reference machine (below), so it is
an order of magnitude for another computer, not a promise.

Pure Python: the Slicer panel imports it in Slicer's own Python, where torch is never imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FINETUNE_EPOCHS = 50
FINETUNE_LR = 1e-3
# nnU-Net's defaults, for a parent that recorded no budget of its own (e.g. plain nnU-Net results).
NNUNET_ITERATIONS, NNUNET_VAL_ITERATIONS, NNUNET_OVERSAMPLING = 250, 50, 0.33
INHERITED = ("iterations_per_epoch", "val_iterations", "batch_size", "patch_size", "foreground_oversampling")
# A validation iteration is a forward pass without augmentation: about a third of a training
# iteration (forward + backward) on the reference CPU.
VALIDATION_COST = 0.35
# Seconds per training iteration per patch voxel (batch x Z x Y x X) for the light topology on
# the reference machine: 2 CPU cores (torch, 2 threads, one augmentation worker, shared with other
# jobs), measured with batch 4, patch 16x64x64: 31 s per epoch of 10 + 5 validation iterations
# (issue 16's loop measurement). The paper topology costs about PAPER_FACTOR times more per voxel.
CPU_SECONDS_PER_VOXEL = {"light": 1.0e-5}
PAPER_FACTOR = 4.0
# Data preparation per case on the reference machine: nnU-Net's preprocessing; regenerating a
# phantom for replay (only the first time: the set is kept in the work dir).
PREPROCESS_SECONDS_PER_CASE = 2.5
PHANTOM_SECONDS_PER_CASE = 1.0


@dataclass(frozen=True)
class Budget:
    """What a training run does: epochs of training iterations (batch x patch) and validation iterations."""

    epochs: int
    iterations_per_epoch: int
    val_iterations: int
    batch_size: int
    patch_size: tuple[int, int, int]
    foreground_oversampling: float

    @property
    def iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch

    @property
    def voxels_per_iteration(self) -> int:
        return self.batch_size * math.prod(self.patch_size)

    def describe(self) -> str:
        patch = "x".join(str(p) for p in self.patch_size)
        return (f"{self.epochs} epochs x {self.iterations_per_epoch} iterations = {self.iterations:,} iterations "
                f"(batch {self.batch_size}, patch {patch}, foreground oversampling {self.foreground_oversampling:g}, "
                f"{self.val_iterations} validation iterations per epoch)")


def _configuration(manifest: dict[str, Any]) -> dict[str, Any]:
    configurations = (manifest.get("nnunet") or {}).get("plans", {}).get("configurations", {})
    return configurations.get("3d_fullres") or {}


def parent_budget(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parent's iterations, validation iterations, batch, patch and oversampling (its own run's)."""
    options = (manifest.get("nnunet") or {}).get("plans", {}).get("batseg_training") or {}
    training = manifest.get("training") or {}
    configuration = _configuration(manifest)
    patch = options.get("patch_size") or configuration.get("patch_size") or (manifest.get("input") or {}).get("patch_size")
    return {
        "iterations_per_epoch": int(options.get("iterations_per_epoch") or training.get("iterations_per_epoch")
                                    or NNUNET_ITERATIONS),
        "val_iterations": int(options.get("val_iterations") or NNUNET_VAL_ITERATIONS),
        "batch_size": int(options.get("batch_size") or configuration.get("batch_size") or training.get("batch_size") or 2),
        "patch_size": [int(p) for p in patch],
        "foreground_oversampling": float(options.get("foreground_oversampling", NNUNET_OVERSAMPLING)),
    }


def finetune_budget(manifest: dict[str, Any], epochs: int | None = None, **overrides: Any) -> Budget:
    """The budget of a fine-tuning of `manifest`'s model: the parent's, with `overrides` (None = inherit)."""
    values = parent_budget(manifest)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Budget(
        epochs=int(epochs if epochs is not None else FINETUNE_EPOCHS),
        iterations_per_epoch=int(values["iterations_per_epoch"]),
        val_iterations=int(values["val_iterations"]),
        batch_size=int(values["batch_size"]),
        patch_size=tuple(int(p) for p in values["patch_size"]),  # type: ignore[arg-type]
        foreground_oversampling=float(values["foreground_oversampling"]),
    )


@dataclass(frozen=True)
class Estimate:
    """Expected seconds of training and of data preparation, and what the figure rests on."""

    training_seconds: float
    preparation_seconds: float
    basis: str

    @property
    def seconds(self) -> float:
        return self.training_seconds + self.preparation_seconds


def _iteration_seconds_from_parent(manifest: dict[str, Any], device: str) -> float | None:
    """Seconds per training iteration per voxel measured while the parent trained on `device`."""
    training = manifest.get("training") or {}
    measured = training.get("median_seconds_per_epoch")
    recorded = training.get("device") or {}
    if not measured or recorded.get("type") != device:
        return None
    parent = parent_budget(manifest)
    work = parent["iterations_per_epoch"] + VALIDATION_COST * parent["val_iterations"]
    voxels = parent["batch_size"] * math.prod(parent["patch_size"])
    return float(measured) / work / voxels


def expected_duration(
    manifest: dict[str, Any], budget: Budget, device: str = "cpu", cases: int = 0, regenerate_cases: int = 0,
) -> Estimate:
    """How long a fine-tuning with `budget` is expected to take on `device` ("cpu" or "cuda";
    "auto" counts as a CPU: the slower case). `cases`: cases to preprocess; `regenerate_cases`:
    phantoms to regenerate for replay."""
    device = "cuda" if device == "cuda" else "cpu"
    per_voxel = _iteration_seconds_from_parent(manifest, device)
    if per_voxel is not None:
        basis = f"the parent's measured {manifest['training']['median_seconds_per_epoch']:.0f} s per epoch on {device}"
    elif device == "cpu":
        topology = (manifest.get("architecture") or {}).get("topology", "light")
        per_voxel = CPU_SECONDS_PER_VOXEL["light"] * (PAPER_FACTOR if topology == "paper" else 1.0)
        basis = "the cost measured on a 2-core CPU; another computer differs"
    else:
        per_voxel = CPU_SECONDS_PER_VOXEL["light"] / 20.0
        basis = "a rough GPU figure (about 20x a 2-core CPU); the GPU's speed decides"
    work = budget.epochs * (budget.iterations_per_epoch + VALIDATION_COST * budget.val_iterations)
    training = work * budget.voxels_per_iteration * per_voxel
    preparation = cases * PREPROCESS_SECONDS_PER_CASE + regenerate_cases * PHANTOM_SECONDS_PER_CASE
    return Estimate(training, preparation, basis)


def replay_counts(manifest: dict[str, Any], replay: bool = True, replay_dir: str | None = None) -> tuple[int, int]:
    """(cases replayed, of which phantoms to regenerate) as far as this machine can tell beforehand:
    the lineage's original data (regenerated where its folders are missing) and earlier rounds."""
    from pathlib import Path

    from batseg.training.replay import earlier_rounds, original_data

    if not replay:
        return 0, 0
    original = original_data(manifest)
    count = int(original.get("num_cases") or 0)
    found = bool(replay_dir) or any(Path(s).is_dir() for s in original.get("sources") or [])
    regenerate = 0 if found or not original.get("phantoms") else int(original["phantoms"]["num_cases"])
    if not found and not regenerate:
        count = 0  # nothing to replay: the run warns and goes on the new cases alone
    earlier = sum(int(r.get("num_cases") or 0) for r in earlier_rounds(manifest)
                  if any(Path(s).is_dir() for s in r.get("sources") or []))
    return count + earlier, regenerate


def finetune_plan(
    manifest: dict[str, Any], new_cases: int, epochs: int | None = None, device: str = "cpu", replay: bool = True,
    replay_dir: str | None = None, **overrides: Any,
) -> str:
    """What a fine-tuning of `manifest`'s model on `new_cases` cases will do and how long it is
    expected to take, in one paragraph (the Slicer panel's confirmation, the engine's first log line)."""
    budget = finetune_budget(manifest, epochs, **overrides)
    replayed, regenerate = replay_counts(manifest, replay, replay_dir)
    estimate = expected_duration(manifest, budget, device, cases=new_cases + replayed, regenerate_cases=regenerate)
    return describe_finetuning(budget, estimate)


def format_duration(seconds: float) -> str:
    """'about 40 min', 'about 2.5 h', 'under a minute'."""
    if seconds < 60:
        return "under a minute"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {max(1, round(minutes)):d} min"
    return f"about {minutes / 60:.1f} h"


def describe_finetuning(budget: Budget, estimate: Estimate) -> str:
    """One paragraph: the budget and its expected duration (the Slicer panel and the engine's log)."""
    text = f"{budget.describe()}: {format_duration(estimate.training_seconds)} of training"
    if estimate.preparation_seconds >= 60:
        text += f", after {format_duration(estimate.preparation_seconds)} of data preparation"
    return text + f" (estimated from {estimate.basis})"
