"""BATseg's default nnU-Net plan: nnU-Net's ExperimentPlanner, then the paper's choices on top.

nnU-Net's own planner runs first (fingerprint -> resampling functions, transposition, data
identifier, batch-Dice setting, the plans file format), then `BATsegPlanner.save_plans`
replaces what the paper (or this project) fixes, in the `3d_fullres` configuration:
- target spacing: 3.3 mm between slices x 0.47 x 0.47 mm in-plane for "paper" (BATseg's
  preprocessing), `network.DEFAULT_SPACING["light"]` for "light";
- network: `network.TOPOLOGIES[topology]` (PlainConvUNet keyword arguments, as nnU-Net writes
  them) instead of the topology nnU-Net derives from the patch size;
- normalisation: per-volume z-score (nnU-Net's `ZScoreNormalization`, `use_mask_for_norm`
  False: subtract the volume's mean, divide by its standard deviation, as the paper says);
- patch size and batch size: `network.DEFAULT_PATCH[topology]`, batch 2 (the paper's);
- only `3d_fullres` is kept (BATseg trains nothing else), so preprocessing does no more.

Axis order (decision): nnU-Net keeps each image's array axes and moves the axis with the
coarsest spacing first (`transpose_forward`). The slice axis of sagittal T1 Gd volumes is
that coarse axis wherever it is stored, so the target spacing is built per dataset: the
coarse value goes to the array axis whose median spacing is largest, the in-plane values to
the two others. Cases whose clearly coarse axis (ratio > 1.5) is another array axis are
refused, because nnU-Net does not reorient and would mix slice directions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.paths import nnUNet_preprocessed

from batseg.errors import BATsegError
from batseg.network import DEFAULT_PATCH, DEFAULT_SPACING, topology_kwargs
from batseg.nnunet_plans import CONFIGURATION, REQUIRES_IMPORT, UNET_CLASS

__all__ = ["CONFIGURATION", "UNET_CLASS", "BATsegPlanner", "check_patch", "plans_identifier", "target_spacing_for"]
DEFAULT_BATCH_SIZE = 2
ANISOTROPY_RATIO = 1.5


def plans_identifier(topology: str) -> str:
    """Name of the plans file (and of the preprocessed data) of a topology."""
    return f"BATsegPlans_{topology}"


def target_spacing_for(case_spacings: Sequence[Sequence[float]], target: Sequence[float]) -> list[float]:
    """The target spacing in the data's own array-axis order (see the module docstring).

    `target` is (coarse, in-plane, in-plane) in mm, e.g. (3.3, 0.47, 0.47).
    """
    spacings = np.asarray(case_spacings, dtype=float)
    coarse_axis = int(np.argmax(np.median(spacings, axis=0)))
    for index, spacing in enumerate(spacings):
        if spacing.max() > ANISOTROPY_RATIO * spacing.min() and int(np.argmax(spacing)) != coarse_axis:
            raise BATsegError(
                f"training case {index + 1} has its slices along array axis {int(np.argmax(spacing))}, most cases along "
                f"axis {coarse_axis}; store all cases with the same orientation (e.g. sagittal slices)"
            )
    others = [a for a in range(3) if a != coarse_axis]
    out = [0.0, 0.0, 0.0]
    out[coarse_axis] = float(target[0])
    out[others[0]], out[others[1]] = float(target[1]), float(target[2])
    return out


def check_patch(patch_size: Sequence[int], arch_kwargs: dict[str, Any]) -> list[int]:
    """The patch as a list; BATsegError unless each axis is a multiple of the network's downsampling."""
    patch = [int(p) for p in patch_size]
    factors = np.prod(np.asarray(arch_kwargs["strides"]), axis=0).astype(int).tolist()
    if len(patch) != 3 or any(p < f or p % f for p, f in zip(patch, factors)):
        raise BATsegError(
            f"--patch {' '.join(map(str, patch))} does not fit the network: each axis (Z Y X) must be a positive "
            f"multiple of {' '.join(map(str, factors))}"
        )
    return patch


class BATsegPlanner(ExperimentPlanner):
    """nnU-Net's ExperimentPlanner with BATseg's spacing, topology, normalisation, patch and batch."""

    def __init__(
        self,
        dataset_name: str,
        topology: str = "light",
        patch_size: Sequence[int] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.topology = topology
        self.arch_kwargs = topology_kwargs(topology)
        self.batseg_patch = check_patch(patch_size or DEFAULT_PATCH[topology], self.arch_kwargs)
        self.batseg_batch = int(batch_size)
        fingerprint_file = Path(nnUNet_preprocessed.require()) / dataset_name / "dataset_fingerprint.json"
        fingerprint = json.loads(fingerprint_file.read_text(encoding="utf-8"))
        spacing = target_spacing_for(fingerprint["spacings"], DEFAULT_SPACING[topology])
        super().__init__(
            dataset_name, plans_name=plans_identifier(topology), overwrite_target_spacing=spacing
        )

    def batseg_configuration(self, planned: dict[str, Any]) -> dict[str, Any]:
        """nnU-Net's 3d_fullres plan with BATseg's fixed choices written over it."""
        configuration = dict(planned)
        configuration.update(
            {
                "patch_size": self.batseg_patch,
                "batch_size": self.batseg_batch,
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "architecture": {
                    "network_class_name": UNET_CLASS,
                    "arch_kwargs": self.arch_kwargs,
                    "_kw_requires_import": list(REQUIRES_IMPORT),
                },
            }
        )
        return configuration

    def save_plans(self, plans: dict[str, Any]) -> None:
        if CONFIGURATION not in plans["configurations"]:
            raise BATsegError("the training images are 2D; BATseg needs 3D volumes")
        plans["configurations"] = {CONFIGURATION: self.batseg_configuration(plans["configurations"][CONFIGURATION])}
        plans["batseg_topology"] = self.topology
        super().save_plans(plans)
