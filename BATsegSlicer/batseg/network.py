"""The BATseg network: nnU-Net's PlainConvUNet plus a parallel surface-distance-field head.

The backbone is dynamic-network-architectures' `PlainConvUNet`, built from the same keyword
arguments nnU-Net writes into its plans, so that weights, plans and nnU-Net's own predictor
all apply to `BATsegNet.unet` unchanged. The field head is a 1x1x1 convolution on the last
decoder stage's feature map (32 channels in the paper's topology), parallel to nnU-Net's
final segmentation layer.

Decisions the paper leaves open (recorded here, switchable where it matters):
- The head reads the *output of the last decoder stage* (the tensor nnU-Net's last
  segmentation layer reads), captured with a forward hook so that nnU-Net's decoder code is
  used as is, not copied.
- The head's activation is a sigmoid for the BATseg field (targets in [0, 1]), a tanh for
  SiNGR's signed target ([-1, 1]) and none ("linear") for the unnormalised field of the paper's
  Table 5 ablations (signed distances in mm, unbounded); `forward` returns the *activated*
  field. The paper only says the head is "a single convolutional layer".
- Deep supervision applies to the segmentation outputs only; the field is produced at full
  resolution only (the boundary loss is applied there alone).
- Topologies: "paper" is the plan METHOD.md reports for the paper's data (7 stages,
  32-320 features); "light" is this project's CPU topology (5 stages, 16-128 features,
  one convolution per decoder stage) used by the shipped model.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from batseg.nnunet_plans import REQUIRES_IMPORT

# Plain-data description of each topology, in the exact form nnU-Net writes into
# plans.json ("architecture" -> "arch_kwargs"); class names are imported by name.
_COMMON_KWARGS: dict[str, Any] = {
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}

TOPOLOGIES: dict[str, dict[str, Any]] = {
    # Axis order (z, y, x) = (left-right slices, superior-inferior, anterior-posterior):
    # the coarse 3.3 mm axis first, as nnU-Net orders it.
    "paper": {
        "n_stages": 7,
        "features_per_stage": [32, 64, 128, 256, 320, 320, 320],
        "kernel_sizes": [[1, 3, 3], [1, 3, 3]] + [[3, 3, 3]] * 5,
        "strides": [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]],
        "n_conv_per_stage": [2] * 7,
        "n_conv_per_stage_decoder": [2] * 6,
        **_COMMON_KWARGS,
    },
    "light": {
        "n_stages": 5,
        "features_per_stage": [16, 32, 64, 128, 128],
        "kernel_sizes": [[1, 3, 3], [1, 3, 3]] + [[3, 3, 3]] * 3,
        "strides": [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [1, 2, 2]],
        "n_conv_per_stage": [2] * 5,
        "n_conv_per_stage_decoder": [1] * 4,
        **_COMMON_KWARGS,
    },
}

# Default preprocessing of each topology (z, y, x spacing in mm) and training patch.
# "paper": 0.47 x 0.47 in-plane, 3.3 mm slices (the paper). "light": twice coarser in-plane,
# a deliberate speed trade-off for laptop CPUs (4x fewer voxels); its accuracy is measured
# and reported in the shipped model's card.
DEFAULT_SPACING: dict[str, tuple[float, float, float]] = {
    "paper": (3.3, 0.47, 0.47),
    "light": (3.3, 0.94, 0.94),
}
DEFAULT_PATCH: dict[str, tuple[int, int, int]] = {
    "paper": (12, 384, 384),
    "light": (16, 160, 160),
}


def topology_kwargs(topology: str) -> dict[str, Any]:
    """A deep copy of the plans-style keyword arguments of a named topology."""
    if topology not in TOPOLOGIES:
        from batseg.errors import BATsegError

        raise BATsegError(f"unknown topology {topology!r}; choose one of: {', '.join(TOPOLOGIES)}")
    return copy.deepcopy(TOPOLOGIES[topology])


def build_unet(
    arch_kwargs: dict[str, Any], num_classes: int, input_channels: int = 1, deep_supervision: bool = False
) -> nn.Module:
    """nnU-Net's own network factory applied to plans-style keyword arguments."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    return get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        arch_kwargs,
        list(REQUIRES_IMPORT),
        input_channels,
        num_classes,
        allow_init=True,
        deep_supervision=deep_supervision,
    )


FIELD_ACTIVATIONS = ("sigmoid", "tanh", "linear")


class BATsegNet(nn.Module):
    """PlainConvUNet + 1x1x1 field head; forward returns (segmentation, activated field).

    `segmentation` is what the wrapped PlainConvUNet returns (a list of scales with deep
    supervision, else one tensor); `field` has `field_channels` channels at full resolution.
    """

    def __init__(self, unet: nn.Module, field_channels: int, field_activation: str = "sigmoid") -> None:
        super().__init__()
        if field_activation not in FIELD_ACTIVATIONS:
            raise ValueError(f"field_activation must be one of {', '.join(FIELD_ACTIVATIONS)}, not {field_activation!r}")
        self.unet = unet
        last_stage = unet.decoder.stages[-1]
        features = unet.encoder.output_channels[0]
        self.field_head = unet.encoder.conv_op(features, field_channels, 1, 1, 0, bias=True)
        self.field_activation = field_activation
        self._features: torch.Tensor | None = None
        last_stage.register_forward_hook(self._keep_features)

    def _keep_features(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._features = output

    @property
    def decoder(self) -> nn.Module:
        """The backbone's decoder: nnU-Net's trainer toggles `decoder.deep_supervision`."""
        return self.unet.decoder

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    def forward(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        segmentation = self.unet(x)
        features, self._features = self._features, None
        field = self.field_head(features)
        if self.field_activation == "sigmoid":
            field = torch.sigmoid(field)
        elif self.field_activation == "tanh":
            field = torch.tanh(field)
        return segmentation, field


def build_network(
    arch_kwargs: dict[str, Any],
    num_classes: int = 5,
    field_channels: int = 4,
    field_activation: str = "sigmoid",
    input_channels: int = 1,
    deep_supervision: bool = False,
) -> nn.Module:
    """BATsegNet, or the plain PlainConvUNet (the nnU-Net baseline) when `field_channels` is 0."""
    unet = build_unet(arch_kwargs, num_classes, input_channels, deep_supervision)
    if field_channels == 0:
        return unet
    return BATsegNet(unet, field_channels, field_activation)
