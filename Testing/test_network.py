"""BATsegNet: output shapes and activations for both topologies, the baseline, deep supervision."""

from __future__ import annotations

import pytest
import torch

from batseg.network import DEFAULT_PATCH, TOPOLOGIES, BATsegNet, build_network, topology_kwargs
from batseg.errors import BATsegError


@pytest.mark.parametrize(
    "topology, shape",
    [("light", (8, 32, 32)), ("paper", (4, 64, 64))],  # smallest inputs each topology downsamples cleanly
)
def test_output_shapes_and_field_range(topology: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(topology_kwargs(topology), num_classes=5, field_channels=4).eval()
    with torch.no_grad():
        seg, field = net(torch.randn(2, 1, *shape))
    assert seg.shape == (2, 5, *shape)
    assert field.shape == (2, 4, *shape)
    assert 0.0 <= float(field.min()) and float(field.max()) <= 1.0  # sigmoid head
    # The head reads the last decoder stage: as many input channels as the first stage has features.
    assert net.field_head.in_channels == TOPOLOGIES[topology]["features_per_stage"][0]
    assert net.field_head.kernel_size == (1, 1, 1)


def test_tanh_head_is_signed() -> None:
    torch.manual_seed(0)
    net = build_network(topology_kwargs("light"), field_channels=4, field_activation="tanh").eval()
    with torch.no_grad():
        _, field = net(torch.randn(1, 1, 8, 32, 32) * 5)
    assert float(field.min()) < 0.0 < float(field.max())
    assert float(field.abs().max()) <= 1.0


def test_deep_supervision_applies_to_segmentation_only() -> None:
    net = build_network(topology_kwargs("light"), field_channels=1, deep_supervision=True).eval()
    with torch.no_grad():
        seg, field = net(torch.randn(1, 1, 8, 32, 32))
    assert isinstance(seg, list) and len(seg) == TOPOLOGIES["light"]["n_stages"] - 1
    assert seg[0].shape == (1, 5, 8, 32, 32) and seg[1].shape == (1, 5, 8, 16, 16)
    assert field.shape == (1, 1, 8, 32, 32)  # the field exists at full resolution only
    net.decoder.deep_supervision = False  # what nnU-Net's trainer toggles
    with torch.no_grad():
        seg, _ = net(torch.randn(1, 1, 8, 32, 32))
    assert isinstance(seg, torch.Tensor)


def test_baseline_is_plain_unet_with_same_backbone_keys() -> None:
    baseline = build_network(topology_kwargs("light"), field_channels=0)
    batseg = build_network(topology_kwargs("light"), field_channels=4)
    assert not isinstance(baseline, BATsegNet)
    with torch.no_grad():
        assert isinstance(baseline.eval()(torch.randn(1, 1, 8, 32, 32)), torch.Tensor)
    backbone = {k[len("unet."):] for k in batseg.state_dict() if k.startswith("unet.")}
    assert backbone == set(baseline.state_dict())


def test_default_patches_fit_their_topologies() -> None:
    for topology, patch in DEFAULT_PATCH.items():
        strides = torch.tensor(TOPOLOGIES[topology]["strides"]).prod(dim=0).tolist()
        assert all(p % s == 0 for p, s in zip(patch, strides)), topology


def test_unknown_topology_is_a_one_line_error() -> None:
    with pytest.raises(BATsegError) as info:
        topology_kwargs("huge")
    assert "\n" not in str(info.value) and "light" in str(info.value)
