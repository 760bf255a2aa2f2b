"""Tests of batseg.losses: hand-computed values, analytic gradients, float32 under fp16, names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from batseg.errors import BATsegError
from batseg.losses import BOUNDARY_LOSSES, boundary_loss, head_activation, target_kind


def pair(pred_values, target_values, dtype=torch.float32):
    """(pred, target) shaped (B, C, z, y, x) = (1, 1, 1, 1, n); pred requires grad."""
    shape = (1, 1, 1, 1, len(pred_values))
    pred = torch.tensor(pred_values, dtype=dtype).reshape(shape).requires_grad_(True)
    return pred, torch.tensor(target_values, dtype=dtype).reshape(shape)


@pytest.mark.parametrize(
    "name, expected",
    [
        # errors e = (0.5, -0.5, 0.0, 0.25)
        ("cubic", (0.125 + 0.125 + 0 + 0.015625) / 4),
        ("cubic_stopgrad", (0.125 + 0.125 + 0 + 0.015625) / 4),
        ("l1", (0.5 + 0.5 + 0 + 0.25) / 4),
        ("l2", (0.25 + 0.25 + 0 + 0.0625) / 4),
    ],
)
def test_regression_loss_values_by_hand(name, expected):
    pred, target = pair([0.75, 0.25, 0.4, 1.0], [0.25, 0.75, 0.4, 0.75])
    loss = boundary_loss(name)(pred, target)
    assert loss.dim() == 0 and loss.item() == pytest.approx(expected, abs=1e-7)


def test_cubic_single_error_is_one_eighth():
    pred, target = pair([0.5], [0.0])
    assert boundary_loss("cubic")(pred, target).item() == 0.125


def test_cubic_gradient_flows_through_both_factors():
    pred, target = pair([0.9, 0.1, 0.5, 0.3], [0.2, 0.6, 0.5, 0.0])
    boundary_loss("cubic")(pred, target).backward()
    e = (pred - target).detach()
    torch.testing.assert_close(pred.grad, 3 * e * e.abs() / e.numel())


def test_stopgrad_gradient_is_e_squared_times_sign():
    pred, target = pair([0.9, 0.1, 0.5, 0.3], [0.2, 0.6, 0.5, 0.0])
    boundary_loss("cubic_stopgrad")(pred, target).backward()
    e = (pred - target).detach()
    torch.testing.assert_close(pred.grad, e * e * torch.sign(e) / e.numel())
    # One third of the full cubic gradient: the stop-gradient ablation differs from cubic.
    full, _ = pair([0.9, 0.1, 0.5, 0.3], [0.2, 0.6, 0.5, 0.0])
    boundary_loss("cubic")(full, target).backward()
    torch.testing.assert_close(full.grad, 3 * pred.grad)


def test_l1_and_l2_gradients():
    for name, grad in (("l1", lambda e: torch.sign(e)), ("l2", lambda e: 2 * e)):
        pred, target = pair([0.9, 0.1, 0.3], [0.2, 0.6, 0.0])
        boundary_loss(name)(pred, target).backward()
        e = (pred - target).detach()
        torch.testing.assert_close(pred.grad, grad(e) / e.numel())


def test_bce_matches_torch_reference_and_is_finite_at_the_edges():
    torch.manual_seed(0)
    pred = torch.rand(2, 4, 3, 5, 5) * 0.98 + 0.01
    target = torch.rand(2, 4, 3, 5, 5)
    torch.testing.assert_close(
        boundary_loss("bce")(pred, target), F.binary_cross_entropy(pred, target)
    )
    edge_pred, edge_target = pair([0.0, 1.0, 1.0], [1.0, 0.0, 1.0])
    loss = boundary_loss("bce")(edge_pred, edge_target)
    loss.backward()
    # Two voxels clamped to 1e-6 from the wrong end: -log(1e-6) each; the third is ~0.
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(2 * 13.8155 / 3, rel=1e-3)
    assert torch.isfinite(edge_pred.grad).all()


def test_focal_l1_weights_in_both_sign_cases():
    # same sign:  p = 0.8, y = 0.6  -> e = 0.2, w = 2 * 0.2 = 0.4, loss 0.08
    # same sign, large error: p = 0.9, y = 0.1 -> w = 1.6 (no clamp), loss 1.28
    # opposite sign, small error: p = 0.1, y = -0.1 -> w = max(0.4, 1) = 1, loss 0.2
    # opposite sign, large error: p = -0.9, y = 0.6 -> w = max(3.0, 1) = 3, loss 4.5
    pred, target = pair([0.8, 0.9, 0.1, -0.9], [0.6, 0.1, -0.1, 0.6])
    loss = boundary_loss("focal_l1")(pred, target)
    per_voxel = torch.tensor([0.08, 1.28, 0.2, 4.5])
    assert loss.item() == pytest.approx(per_voxel.mean().item(), abs=1e-6)
    loss.backward()  # weight detached: d/dp = w * sign(e) / n
    w = torch.tensor([0.4, 1.6, 1.0, 3.0]).reshape(pred.shape)
    torch.testing.assert_close(pred.grad, w * torch.sign(pred - target).detach() / 4)


def test_focal_l1_alpha_beta_are_overridable():
    pred, target = pair([0.8, 0.1], [0.6, -0.1])
    # alpha 1, beta 2: w = 0.04 (same sign), max(0.04, 1) = 1 (opposite sign)
    loss = boundary_loss("focal_l1", alpha=1.0, beta=2.0)(pred, target)
    assert loss.item() == pytest.approx((0.04 * 0.2 + 1.0 * 0.2) / 2, abs=1e-7)


@pytest.mark.parametrize("name", BOUNDARY_LOSSES)
def test_fp16_inputs_give_a_float32_loss(name):
    torch.manual_seed(1)
    low = -1.0 if name == "focal_l1" else 0.0
    pred = (torch.rand(1, 2, 2, 4, 4) * (1 - low) + low).half().requires_grad_(True)
    target = (torch.rand(1, 2, 2, 4, 4) * (1 - low) + low).half()
    loss = boundary_loss(name)(pred, target)
    assert loss.dtype == torch.float32
    reference = boundary_loss(name)(pred.detach().float(), target.float())
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert pred.grad.dtype == torch.float16 and torch.isfinite(pred.grad).all()


def test_bce_runs_under_autocast():
    pred, target = pair([0.3, 0.7], [0.0, 1.0])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = boundary_loss("bce")(pred, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(-torch.log(torch.tensor(0.7)).item(), rel=1e-5)


def test_head_and_target_kinds():
    assert {n: (head_activation(n), target_kind(n)) for n in BOUNDARY_LOSSES} == {
        "cubic": ("sigmoid", "field"),
        "l1": ("sigmoid", "field"),
        "l2": ("sigmoid", "field"),
        "bce": ("sigmoid", "field"),
        "cubic_stopgrad": ("sigmoid", "field"),
        "focal_l1": ("tanh", "sing"),
    }


@pytest.mark.parametrize("call", [boundary_loss, head_activation, target_kind])
def test_unknown_name_lists_the_valid_ones(call):
    with pytest.raises(BATsegError, match="cubic, l1, l2, bce, cubic_stopgrad, focal_l1"):
        call("dice")


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        boundary_loss("cubic")(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2))
