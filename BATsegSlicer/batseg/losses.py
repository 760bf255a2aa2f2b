"""Boundary losses of the field head, selectable by name, and what each one needs from the trainer.

Every loss takes (pred, target) of the same shape (B, C, z, y, x) and returns the mean over all
voxels and channels as a float32 scalar.  `pred` is the ALREADY-ACTIVATED head output: a
sigmoid in [0, 1] for the BATseg field (`target_kind` "field", `targets.surface_distance_field`),
the raw (linear) output for the unnormalised field of the paper's Table 5 ablations (signed mm,
unbounded: a sigmoid could not reach it), a tanh in [-1, 1] for SiNGR's Focal-L1 (`target_kind`
"sing", `targets.sing_target`).  With
e = pred - target:

  cubic           mean(|e|^3), BATseg's loss (paper 000, Eq. 3), written in the paper as
                  (f - f_gt)^2 * |f - f_gt|; the gradient flows through both factors
                  (d/de = 3 e |e|).  The leading minus sign printed in Eq. 3 is a typo:
                  minimising it would push the prediction away from the target.
  cubic_stopgrad  mean(detach(e^2) * |e|): the paper's ablation without a gradient through the
                  squared factor (d/de = e^2 sign(e)).
  l1, l2          mean(|e|), mean(e^2): the paper's l1 / l2 ablations.
  bce             binary cross-entropy against the soft target, the paper's "l_ce" ablation.
                  Computed in float32 with autocast off (torch refuses BCE on probabilities
                  under fp16 autocast, and fp16 logs of probabilities are unsafe); the
                  probabilities are clamped to [1e-6, 1 - 1e-6] so the log stays finite.
  focal_l1        SiNGR's Focal-L1 as specified in docs/METHOD.md section 3: weight
                  w = alpha |e|^beta where pred and target have the same sign (pred * target
                  >= 0, as in the paper's indicator), else max(alpha |e|^beta, 1); w is
                  detached; loss = mean(w |e|); alpha = 2, beta = 1 by default.  The paper's
                  Eq. 6 also divides the weight by max(|target|, |pred|) + eps and has no
                  alpha; the project follows METHOD.md's form.

All losses upcast to float32 inside an autocast-disabled region, so an fp16 head output under
mixed precision still gives an fp32 loss and fp32 arithmetic.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import BATsegError

BOUNDARY_LOSSES = ("cubic", "l1", "l2", "bce", "cubic_stopgrad", "focal_l1")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_BCE_EPS = 1e-6  # probability clamp: log(1e-6) = -13.8, far from float32 limits


def boundary_loss(name: str, alpha: float = 2.0, beta: float = 1.0) -> Loss:
    """The loss called `name` (one of BOUNDARY_LOSSES); alpha/beta are used by focal_l1 only."""
    _check_name(name)
    if name == "focal_l1":
        return _float32(lambda p, y: _focal_l1(p, y, alpha, beta))
    return _float32(
        {
            "cubic": _cubic,
            "cubic_stopgrad": _cubic_stopgrad,
            "l1": _l1,
            "l2": _l2,
            "bce": _bce,
        }[name]
    )


def head_activation(name: str, normalised: bool = True) -> str:
    """Activation the field head needs for loss `name`: "tanh" (SiNG target), "sigmoid" (the
    normalised field, in [0, 1]) or "linear" (the unnormalised field, signed mm).

    The paper's head is "a single convolutional layer" and names no activation; the range of the
    target decides (docs/method.md)."""
    _check_name(name)
    if name == "focal_l1":
        return "tanh"
    return "sigmoid" if normalised else "linear"


def target_kind(name: str) -> str:
    """Target the loss `name` compares with: "sing" (sing_target) or "field" (surface field)."""
    _check_name(name)
    return "sing" if name == "focal_l1" else "field"


def _float32(loss: Loss) -> Loss:
    """Wrap `loss` so it checks shapes and runs in float32 with autocast off."""

    def wrapped(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            # A wiring bug in the trainer, not a user error.
            raise ValueError(
                f"boundary loss: prediction {tuple(pred.shape)} and target "
                f"{tuple(target.shape)} differ in shape"
            )
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return loss(pred.float(), target.float())

    return wrapped


def _cubic(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    e = p - y
    return (e * e * e.abs()).mean()


def _cubic_stopgrad(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    e = p - y
    return ((e * e).detach() * e.abs()).mean()


def _l1(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (p - y).abs().mean()


def _l2(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    e = p - y
    return (e * e).mean()


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(p.clamp(_BCE_EPS, 1.0 - _BCE_EPS), y)


def _focal_l1(p: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    e = (p - y).abs()
    with torch.no_grad():
        w = alpha * e.pow(beta)
        # Wrong side of 0 (a voxel that would be misclassified): weight at least 1.
        w = torch.where(p * y >= 0, w, w.clamp(min=1.0))
    return (w * e).mean()


def _check_name(name: str) -> None:
    if name not in BOUNDARY_LOSSES:
        raise BATsegError(
            f"unknown boundary loss {name!r}; choose one of {', '.join(BOUNDARY_LOSSES)}"
        )
