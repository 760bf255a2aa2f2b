"""Sliding-window prediction over the model grid with Gaussian importance weighting.

As in nnU-Net's predictor: tiles overlap by `1 - step` of their size (step 0.5 by default),
every tile's outputs are weighted by a Gaussian centred on the tile (sigma = tile / 8 per
axis, normalised to 1 at the centre) before they are summed, and the sum is divided by the
summed weights, so tile borders, where the network sees little context, count least. An image
smaller than the tile along an axis is zero-padded (zero is the volume's mean after z-scoring)
symmetrically and cropped back afterwards.

Tile size (decision): the network is fully convolutional, so tiles need not be the training
patch; they only need each axis to be a multiple of the network's total downsampling. Modes:
- "patch": the training patch (nnU-Net's behaviour);
- "auto" (default): on a box around the spinal cord (the cascade crop), the whole padded box as
  one tile when it holds at most `max_voxels` voxels, else the tile under that budget with which
  the network computes the fewest voxels in all (tile voxels x tiles, overlaps included), no axis
  under half the training patch. On the whole scan, the training patch when it fits the budget
  (nnU-Net's tiling), else that cheapest tile. Why the two: instance normalisation makes every
  layer's output depend on the statistics of the whole tile, and a tile holding the whole scan
  (skull base, neck, chest, air) shows the network statistics its training patches never had.
  Measured with the shipped light model (training patch 16 x 64 x 64) on 40 held-out phantoms,
  whole volume: mean Dice 50.8 % with one whole-volume tile against 68.3 % with nnU-Net's tiling;
  on the box around the cord the two are within a point (68.8 / 68.5 %), the box tile 2.2x faster
  (docs/inference.md, "Tiles"). For the
  paper topology's 16 x 545 x 545 grid and its 1.26 M-voxel budget that is 16 x 192 x 384 in 10
  tiles (11.8 M voxels) instead of the training patch 12 x 384 x 384 in 8 (14.2 M, each over
  the budget): the tile holds every slice, so no slab is predicted twice across left-right.
  Fewer, larger tiles remove the overlap (a 16 x 272 x 272 light-model grid is 1 tile instead of
  9 patch tiles covering 3.1x its voxels) and are the main CPU speed lever. The price: instance
  normalisation sees statistics of a larger region than in training (above);
- an explicit (z, y, x) tile.
The Gaussian and the tile positions are computed here with numpy (same definitions as nnU-Net's
`compute_gaussian` and `compute_steps_for_sliding_window`) so that ONNX Runtime inference does
not import torch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from batseg.errors import BATsegError

TileRunner = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]
DEFAULT_STEP = 0.5
SIGMA_SCALE = 1.0 / 8.0


def downsampling_factors(strides: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    """Total downsampling of the network per axis: every tile axis must be a multiple of it."""
    return tuple(int(v) for v in np.prod(np.asarray(strides, dtype=np.int64), axis=0))  # type: ignore[return-value]


def round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def parse_tile(text: str) -> str | tuple[int, int, int]:
    """'auto', 'patch' or 'Z,Y,X' (also 'ZxYxX') from the command line."""
    if text in ("auto", "patch"):
        return text
    parts = text.replace("x", ",").split(",")
    try:
        tile = tuple(int(p) for p in parts)
    except ValueError:
        tile = ()
    if len(tile) != 3 or min(tile) <= 0:
        raise BATsegError(f"--tile {text!r}: give 'auto', 'patch' or three positive integers Z,Y,X")
    return tile  # type: ignore[return-value]


def choose_tile(
    shape: Sequence[int],
    patch_size: Sequence[int],
    multiple: Sequence[int],
    mode: str | Sequence[int] = "auto",
    max_voxels: int = 2_000_000,
    step: float = DEFAULT_STEP,
    whole_volume: bool = False,
) -> tuple[int, int, int]:
    """The tile shape for an image of `shape` (model grid), see the module docstring; `whole_volume`:
    `shape` is the whole scan, not a box around the spinal cord."""
    patch = tuple(int(p) for p in patch_size)
    if mode == "patch" or (mode == "auto" and whole_volume and math.prod(patch) <= max_voxels):
        return patch  # type: ignore[return-value]
    if mode != "auto":
        tile = tuple(int(t) for t in mode)
        if any(t % m for t, m in zip(tile, multiple)):
            raise BATsegError(
                f"tile {' x '.join(map(str, tile))} does not fit the network: each axis must be a multiple of "
                f"{' x '.join(map(str, multiple))}"
            )
        return tile  # type: ignore[return-value]
    whole = [round_up(max(n, 1), m) for n, m in zip(shape, multiple)]
    if np.prod(whole, dtype=np.int64) <= max_voxels:
        return tuple(whole)  # type: ignore[return-value]
    return _cheapest_tile(shape, patch, multiple, max_voxels, step) or _shrunk_tile(whole, patch, multiple, max_voxels)


def _axis_count(size: int, tile: int, step: float) -> int:
    """Tiles along one axis (as `tile_starts` places them)."""
    return 1 if size <= tile else int(math.ceil((size - tile) / (tile * step))) + 1


def _cheapest_tile(
    shape: Sequence[int], patch: Sequence[int], multiple: Sequence[int], max_voxels: int, step: float
) -> tuple[int, int, int] | None:
    """The tile under the budget that makes the network compute the fewest voxels in all (tiles x
    tile voxels, overlaps counted), fewer tiles on a tie; no axis below half the training patch,
    so each tile keeps context. None when no such tile fits the budget."""
    options = []
    for n, p, m in zip(shape, patch, multiple):
        whole = round_up(max(int(n), 1), m)
        floor = min(whole, max(m, round_up(max(int(p) // 2, 1), m)))
        options.append(range(floor, whole + 1, m))
    best: tuple[int, int, tuple[int, int, int]] | None = None
    for tile in itertools.product(*options):
        voxels = math.prod(tile)
        if voxels > max_voxels:
            continue
        count = math.prod(_axis_count(int(n), t, step) for n, t in zip(shape, tile))
        key = (count * voxels, count, tile)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else best[2]


def _shrunk_tile(
    tile: list[int], patch: Sequence[int], multiple: Sequence[int], max_voxels: int
) -> tuple[int, int, int]:
    """The whole volume shrunk axis by axis toward the training patch until under the budget (or at the patch)."""
    floor = [min(t, max(int(p), m)) for t, p, m in zip(tile, patch, multiple)]
    while np.prod(tile, dtype=np.int64) > max_voxels:
        ratios = [t / p if t - m >= f else 0.0 for t, p, m, f in zip(tile, patch, multiple, floor)]
        axis = int(np.argmax(ratios))
        if ratios[axis] == 0.0:
            break  # already at the patch size: the budget cannot be met with a smaller tile
        tile[axis] -= multiple[axis]
    return tuple(tile)  # type: ignore[return-value]


def tile_starts(size: int, tile: int, step: float) -> list[int]:
    """Start positions along one axis: evenly spaced, at most `tile * step` apart, covering `size`."""
    if size <= tile:
        return [0]
    count = int(math.ceil((size - tile) / (tile * step))) + 1
    return [int(round(v)) for v in np.linspace(0, size - tile, count)]


def gaussian_importance(tile: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """Separable Gaussian weight map of a tile, 1 at the centre voxel, strictly positive."""
    weights = np.ones((), dtype=np.float64)
    for n in tile:
        centre = n // 2
        sigma = max(n * sigma_scale, 1e-6)
        profile = np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2)
        weights = np.multiply.outer(weights, profile)
    return np.maximum(weights, 1e-12).astype(np.float32)


@dataclass
class WindowPlan:
    """Where the tiles go on the (padded) model grid."""

    tile: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    pad_before: tuple[int, int, int]
    starts: list[tuple[int, int, int]]

    @property
    def count(self) -> int:
        return len(self.starts)


def plan_windows(shape: Sequence[int], tile: Sequence[int], step: float = DEFAULT_STEP) -> WindowPlan:
    """Padding and tile positions for an image of `shape`."""
    if not 0 < step <= 1:
        raise BATsegError(f"tile step {step} must be in (0, 1]")
    padded = tuple(max(int(n), int(t)) for n, t in zip(shape, tile))
    before = tuple((p - int(n)) // 2 for p, n in zip(padded, shape))
    per_axis = [tile_starts(p, t, step) for p, t in zip(padded, tile)]
    starts = [(z, y, x) for z in per_axis[0] for y in per_axis[1] for x in per_axis[2]]
    return WindowPlan(tuple(int(t) for t in tile), padded, before, starts)  # type: ignore[arg-type]


def predict_windows(
    volume: np.ndarray,
    run_tile: TileRunner,
    plan: WindowPlan,
    on_tile: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run `run_tile` over the plan's tiles and blend: (logits (C, z, y, x), field (F, z, y, x) or None).

    `run_tile` takes a (1, 1, tz, ty, tx) float32 array and returns the logits (1, C, ...) and the
    field (1, F, ...) or None.
    """
    shape = volume.shape
    padded = np.zeros(plan.padded_shape, dtype=np.float32)
    inner = tuple(slice(b, b + n) for b, n in zip(plan.pad_before, shape))
    padded[inner] = volume
    single = plan.count == 1
    weight = None if single else gaussian_importance(plan.tile)
    logits_sum: np.ndarray | None = None
    field_sum: np.ndarray | None = None
    weight_sum = None if single else np.zeros(plan.padded_shape, dtype=np.float32)
    for index, start in enumerate(plan.starts):
        window = tuple(slice(s, s + t) for s, t in zip(start, plan.tile))
        logits, field = run_tile(np.ascontiguousarray(padded[window])[None, None])
        if single:
            logits_sum, field_sum = logits[0], None if field is None else field[0]
        else:
            if logits_sum is None:
                logits_sum = np.zeros((logits.shape[1], *plan.padded_shape), dtype=np.float32)
                if field is not None:
                    field_sum = np.zeros((field.shape[1], *plan.padded_shape), dtype=np.float32)
            logits_sum[(slice(None), *window)] += logits[0] * weight
            if field is not None and field_sum is not None:
                field_sum[(slice(None), *window)] += field[0] * weight
            weight_sum[window] += weight  # type: ignore[index]
        if on_tile is not None:
            on_tile(index + 1, plan.count)
    assert logits_sum is not None
    if not single:
        logits_sum /= weight_sum
        if field_sum is not None:
            field_sum /= weight_sum
    crop = (slice(None), *inner)
    logits_out = np.ascontiguousarray(logits_sum[crop])
    field_out = None if field_sum is None else np.ascontiguousarray(field_sum[crop])
    return logits_out, field_out
