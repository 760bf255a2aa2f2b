"""The cord locator's network: a small 2-D U-Net from dynamic-network-architectures.

nnU-Net's PlainConvUNet with 2-D convolutions: 5 stages of 16-128 features, two 3 x 3 convolutions
per stage, instance norm and leaky ReLU as nnU-Net configures them. Two outputs: background and
cord. The keyword arguments live in the locator file's manifest, so the file alone rebuilds it.
"""

from __future__ import annotations

from typing import Any

# torch is imported inside the functions: the locator file's checks and the ONNX path need
# ARCHITECTURE without paying for loading torch (about 2 s).

ARCHITECTURE: dict[str, Any] = {
    "n_stages": 5,
    "features_per_stage": [16, 32, 64, 128, 128],
    "kernel_sizes": [[3, 3]] * 5,
    "strides": [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]],
    "n_conv_per_stage": [2] * 5,
    "n_conv_per_stage_decoder": [2] * 4,
}
NUM_CLASSES = 2  # background, cord


def build_locator(architecture: dict[str, Any] | None = None) -> Any:
    """The PlainConvUNet of `architecture` (default ARCHITECTURE), 1 input channel, 2 outputs."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from torch import nn

    arch = dict(ARCHITECTURE if architecture is None else architecture)
    return PlainConvUNet(
        input_channels=1,
        n_stages=int(arch["n_stages"]),
        features_per_stage=[int(f) for f in arch["features_per_stage"]],
        conv_op=nn.Conv2d,
        kernel_sizes=[list(k) for k in arch["kernel_sizes"]],
        strides=[list(s) for s in arch["strides"]],
        n_conv_per_stage=[int(n) for n in arch["n_conv_per_stage"]],
        num_classes=NUM_CLASSES,
        n_conv_per_stage_decoder=[int(n) for n in arch["n_conv_per_stage_decoder"]],
        conv_bias=True,
        norm_op=nn.InstanceNorm2d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=False,
    )


def cord_probability(network: Any, planes: Any, batch: int = 8) -> Any:
    """Softmax probability of the cord for planes (n, rows, cols, a torch tensor), in batches, without gradients."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, planes.shape[0], batch):
            logits = network(planes[start : start + batch, None])
            out.append(torch.softmax(logits.float(), dim=1)[:, 1])
    return torch.cat(out) if out else planes.new_zeros(planes.shape)
