"""Training the cord locator on scans with cord masks (nnU-Net raw folders with `cordTr/`).

Every case of the given folders (imagesTr/CASE_0000.nii.gz with cordTr/CASE.nii.gz: the layout
`batseg phantom` and `scripts/make_real_insertions.py` write) is turned into locator planes once
and kept in memory (a few hundred scans at 1.5 mm are a few hundred MB). Batches are random
crops of planes, three in four centred near the cord, one anywhere (so the network also learns
to say "no cord" on lateral slices and far from the spine), with augmentation on the batch:
scaling 0.8-1.25 and rotation up to 15 degrees (torch grid_sample), a smooth multiplicative
bias field, gamma 0.7-1.5, a random contrast curve for half the patches (`random_contrast`),
Gaussian noise and blur, and a tight field of view for a quarter (`tight_field_of_view`). Loss: cross-entropy + soft Dice on the cord.
Adam with a polynomial learning-rate decay, as nnU-Net decays SGD's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from torch import nn

from batseg.cord_locator.network import build_locator
from batseg.cord_locator.planes import image_planes, mask_planes

PATCH = (128, 128)
NEAR_CORD_SHARE = 0.75
RANDOM_CONTRAST_SHARE = 0.5
CONTRAST_KNOTS = 7
TIGHT_FOV_SHARE = 0.25


@dataclass
class PlaneCase:
    """One training scan as locator planes and cord planes."""

    name: str
    planes: np.ndarray  # (n, rows, cols) float32
    cord: np.ndarray  # (n, rows, cols) uint8
    cord_slices: np.ndarray  # indices of planes that hold cord


def folder_cases(folder: Path) -> Iterable[tuple[str, Path, Path]]:
    """(name, image, cord mask) of every case of an nnU-Net raw folder that has a cord mask."""
    for image in sorted((folder / "imagesTr").glob("*_0000.nii.gz")):
        name = image.name[: -len("_0000.nii.gz")]
        cord = folder / "cordTr" / f"{name}.nii.gz"
        if cord.exists():
            yield name, image, cord


def load_case(name: str, image_path: Path, cord_path: Path) -> PlaneCase:
    """A scan and its cord mask as locator planes."""
    image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(cord_path))) > 0.5
    planes = image_planes(image)
    cord = mask_planes(mask, planes)
    return PlaneCase(name, planes.planes, cord, np.flatnonzero(cord.reshape(cord.shape[0], -1).any(axis=1)))


def load_cases(folders: Iterable[Path], exclude: Callable[[str], bool] = lambda name: False) -> list[PlaneCase]:
    """Every case of `folders` whose name `exclude` does not reject."""
    return [load_case(*entry) for folder in folders for entry in folder_cases(Path(folder)) if not exclude(entry[0])]


def _crop(array: np.ndarray, top: int, left: int, size: tuple[int, int]) -> np.ndarray:
    """A (rows, cols) window of a plane, zero outside it (zero is the mean after z-scoring)."""
    out = np.zeros(size, dtype=array.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size[0], array.shape[0]), min(left + size[1], array.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = array[r0:r1, c0:c1]
    return out


def sample_patch(case: PlaneCase, rng: np.random.Generator, size: tuple[int, int] = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """One (image, cord) patch: near the cord with probability NEAR_CORD_SHARE, else anywhere."""
    near = case.cord_slices.size > 0 and rng.random() < NEAR_CORD_SHARE
    index = int(rng.choice(case.cord_slices)) if near else int(rng.integers(case.planes.shape[0]))
    plane, cord = case.planes[index], case.cord[index]
    if near:
        rows, cols = np.nonzero(cord)
        pick = int(rng.integers(rows.size))
        centre = (rows[pick] + rng.integers(-size[0] // 3, size[0] // 3 + 1),
                  cols[pick] + rng.integers(-size[1] // 3, size[1] // 3 + 1))
    else:
        centre = (int(rng.integers(plane.shape[0])), int(rng.integers(plane.shape[1])))
    top, left = int(centre[0]) - size[0] // 2, int(centre[1]) - size[1] // 2
    return _crop(plane, top, left, size), _crop(cord, top, left, size)


def augment(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial and intensity augmentation of a batch (module docstring); images (b,1,h,w), labels (b,1,h,w)."""
    b = images.shape[0]
    angle = torch.tensor(rng.uniform(-15, 15, b) * math.pi / 180, dtype=torch.float32)
    scale = torch.tensor(np.exp(rng.uniform(math.log(0.8), math.log(1.25), b)), dtype=torch.float32)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.cos(angle) / scale
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, 1, 1] = torch.cos(angle) / scale
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    # A smooth bias field: a 4 x 4 random log-gain grid upsampled to the patch.
    gain = torch.tensor(rng.normal(0.0, 0.25, (b, 1, 4, 4)), dtype=torch.float32)
    images = images * torch.exp(F.interpolate(gain, size=images.shape[-2:], mode="bicubic", align_corners=False))
    # Gamma on the batch's [0, 1] range, then back to zero mean, unit variance per image.
    lo = images.amin(dim=(2, 3), keepdim=True)
    hi = images.amax(dim=(2, 3), keepdim=True)
    unit = (images - lo) / (hi - lo).clamp_min(1e-6)
    gamma = torch.tensor(np.exp(rng.uniform(math.log(0.7), math.log(1.5), (b, 1, 1, 1))), dtype=torch.float32)
    images = random_contrast(unit.pow(gamma), rng)
    images = (images - images.mean(dim=(2, 3), keepdim=True)) / images.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    if rng.random() < 0.3:
        images = F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    images = images + torch.randn_like(images) * torch.tensor(rng.uniform(0, 0.15, (b, 1, 1, 1)), dtype=torch.float32)
    return tight_field_of_view(images, labels, rng)


def random_contrast(images: torch.Tensor, rng: np.random.Generator, share: float = RANDOM_CONTRAST_SHARE) -> torch.Tensor:
    """For `share` of the images, intensities mapped through a random piecewise-linear curve over
    their quantiles (not necessarily monotone): SynthSeg's lesson that a network shown arbitrary
    tissue contrasts learns shape and position. Why here: the training scans are T2 (some made
    T1-like around the cord) and phantoms; real T1, with bright fat and marrow, is almost absent."""
    out = images.clone()
    for i in range(images.shape[0]):
        if rng.random() >= share:
            continue
        values = images[i].numpy()
        knots = np.quantile(values, np.linspace(0, 1, CONTRAST_KNOTS))
        out[i] = torch.from_numpy(np.interp(values, knots, rng.uniform(0, 1, CONTRAST_KNOTS)).astype(np.float32))
    return out


def tight_field_of_view(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
                        share: float = TIGHT_FOV_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """For `share` of the images, everything outside a random window of 30-100 % of each side set to
    zero (the padding value at inference), labels too: real scans can be tight crops around the cord."""
    for i in range(images.shape[0]):
        if rng.random() >= share:
            continue
        size = [int(n * rng.uniform(0.3, 1.0)) for n in images.shape[-2:]]
        top, left = (int(rng.integers(0, n - m + 1)) for n, m in zip(images.shape[-2:], size))
        keep = torch.zeros(images.shape[-2:], dtype=torch.bool)
        keep[top : top + size[0], left : left + size[1]] = True
        images[i, :, ~keep] = 0.0
        labels[i, :, ~keep] = 0.0
    return images, labels


def batch(cases: list[PlaneCase], size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random augmented batch."""
    pairs = [sample_patch(cases[int(rng.integers(len(cases)))], rng) for _ in range(size)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None].astype(np.float32))
    labels = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None].astype(np.float32))
    return augment(images, labels, rng)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + (1 - soft Dice of the cord over the batch)."""
    target = labels[:, 0].long()
    ce = F.cross_entropy(logits, target)
    prob = torch.softmax(logits, dim=1)[:, 1]
    cord = labels[:, 0]
    dice = (2 * (prob * cord).sum() + 1.0) / (prob.sum() + cord.sum() + 1.0)
    return ce + (1 - dice)


def train(cases: list[PlaneCase], iterations: int, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
          log: Callable[[str], None] = print, log_every: int = 50) -> nn.Module:
    """Train a fresh locator network on `cases` (module docstring); returns it in eval mode."""
    if not cases:
        raise ValueError("no training case with a cord mask")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = build_locator()
    optimiser = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=1e-5)
    network.train()
    start, running = time.monotonic(), []
    for it in range(iterations):
        for group in optimiser.param_groups:
            group["lr"] = lr * (1 - it / iterations) ** 0.9
        images, labels = batch(cases, batch_size, rng)
        loss = loss_fn(network(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), 12.0)
        optimiser.step()
        running.append(loss.item())
        if (it + 1) % log_every == 0 or it + 1 == iterations:
            log(f"iteration {it + 1}/{iterations}: loss {np.mean(running):.4f}, {time.monotonic() - start:.0f} s")
            running = []
    return network.eval()
