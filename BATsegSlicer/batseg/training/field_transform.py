"""The boundary head's training target, computed inside nnU-Net's data-augmentation workers.

`BoundaryTargetTransform` is a batchgeneratorsv2 transform appended to nnU-Net's training and
validation pipelines. It reads the augmented, full-resolution label patch (after the spatial
transform, the mirroring and nnU-Net's removal of the -1 padding label) and computes the
surface distance field (`targets.surface_distance_field`) or SiNGR's target
(`targets.sing_target`) with the spacing of the preprocessed data (the plan's spacing). It
runs in the augmentation worker processes, in parallel with the training step, so the step
itself costs what plain nnU-Net's step costs (see scripts/bench_train_step.py).

How the target reaches the trainer: nnU-Net's data loader keeps only the 'image' and
'segmentation' entries of a transform's output (nnUNetDataLoader.generate_train_batch), so an
extra key would be dropped. The field therefore travels in the 'segmentation' entry: the
full-resolution target becomes one float32 tensor of 1 + C channels, the label first and the
C field channels after it. `split_target` undoes this in the trainer.

Placement: the transform is the last step of the pipeline, i.e. it runs on the
full-resolution entry of the list produced by `DownsampleSegForDSTransform` (that entry is
the label itself, unchanged). The field is thus computed from the augmented full-resolution
label exactly as if it ran just before the downsampling, but it is not downsampled: deep
supervision stays on the segmentation head and the boundary loss uses the full-resolution
field only (METHOD.md, section 1), so lower-resolution copies of the field would be wasted
work and wasted transfer between processes.

Spacing and scaling augmentation: BATseg's patches are anisotropic (16 x 64 x 64, 16 x 160 x 160,
12 x 384 x 384: in-plane size over slices > 3), so nnU-Net trains them with its "dummy 2D"
augmentation: the spatial transform (rotation, scaling by 0.7-1.4 with p 0.2) runs on each slice
in-plane, scaling both in-plane axes by one factor and the slice axis not at all. A scaled patch
is therefore an anisotropically stretched lesion on the nominal grid, and the field is not the
original lesion's field rescaled (normalising by the class depth D cancels only a uniform
scaling). The field is computed on the augmented label with the plan's nominal spacing, i.e. it is
the exact field of the lesion the augmented image shows on the grid the network sees: the target
matches its input, which is what the boundary loss needs. What this gives up is the physical
interpretation of a scaled patch's distances (its in-plane millimetres are off by the scale
factor), the same approximation nnU-Net's own segmentation target makes for scaled patches.
Also per patch, not per volume: distances see only the patch (see targets.py and
docs/method.md, "Departures from the paper").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from batseg.labels import NUM_CLASSES
from batseg.targets import field_channels, sing_target, surface_distance_field

LABEL_CHANNELS = 1


def boundary_channels(kind: str, variant: str = "classwise", num_classes: int = NUM_CLASSES) -> int:
    """Channels of the boundary target: SiNG is class-wise; the field depends on its variant."""
    return num_classes - 1 if kind == "sing" else field_channels(variant, num_classes)


class BoundaryTargetTransform(BasicTransform):
    """Appends the boundary target to the full-resolution label (see the module docstring)."""

    def __init__(
        self,
        spacing: Sequence[float],
        kind: str = "field",
        variant: str = "classwise",
        truncation: float | None = 1.0,
        num_classes: int = NUM_CLASSES,
        normalise: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("field", "sing"):
            raise ValueError(f"kind must be 'field' or 'sing', not {kind!r}")
        self.spacing = tuple(float(s) for s in spacing)
        self.kind = kind
        self.variant = variant
        self.truncation = None if truncation is None else float(truncation)
        self.num_classes = num_classes
        self.normalise = bool(normalise)

    @property
    def channels(self) -> int:
        """Number of target channels this transform appends."""
        return boundary_channels(self.kind, self.variant, self.num_classes)

    def target_of(self, label: np.ndarray) -> np.ndarray:
        """The boundary target (C, z, y, x) of one label volume (z, y, x)."""
        if self.kind == "sing":
            return sing_target(label, self.spacing, self.num_classes)
        return surface_distance_field(
            label, self.spacing, self.num_classes, self.truncation, self.variant, self.normalise
        )

    def apply(self, data_dict: dict[str, Any], **params: Any) -> dict[str, Any]:
        segmentation = data_dict.get("segmentation")
        if segmentation is None:
            return data_dict
        full = segmentation[0] if isinstance(segmentation, list) else segmentation
        target = torch.from_numpy(self.target_of(full[0].numpy()))
        packed = torch.cat((full.to(torch.float32), target), dim=0)
        if isinstance(segmentation, list):
            segmentation[0] = packed
        else:
            data_dict["segmentation"] = packed
        return data_dict


def split_target(target: Any, label_dtype: torch.dtype = torch.int16) -> tuple[Any, torch.Tensor]:
    """(segmentation target as nnU-Net expects it, boundary target) from a packed batch target.

    `target` is the batch's 'target': a list of scales (deep supervision) whose first entry is
    packed, or one packed tensor. The label channel goes back to an integer type.
    """
    full = target[0] if isinstance(target, (list, tuple)) else target
    label = full[:, :LABEL_CHANNELS].to(label_dtype)
    boundary = full[:, LABEL_CHANNELS:]
    if isinstance(target, (list, tuple)):
        return [label] + list(target[1:]), boundary
    return label, boundary
