"""Memory the prediction pipeline will need for an image, estimated from its header alone.

`batseg predict` refuses an image whose estimate exceeds the memory available now, with one
line, before reading its pixels: better than being killed half-way (or swapping the machine
to a halt) on a 16 GB laptop.

The estimate (bytes) is the sum of what is alive at the peak, the end of the prediction:
- input grid: the image as read (its pixel type), its float32 copy, the back-resampled logits
  (5 channels) turned in place into probabilities, the field (F channels) when asked for, the
  label map, and one float32 working volume for postprocessing and the report;
- model grid: the resampled image, the logits and field sums (and the weights when there are
  several tiles);
- the network's activations on one tile: `ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE` times the
  first stage's features per tile voxel. Calibrated with ONNX Runtime on the light topology
  (16 features): 595 MB per million voxels at 16 x 160 x 160 and 630 at 16 x 272 x 272, i.e.
  about 40 bytes per voxel per first-stage feature; PyTorch's peak is of the same order.
- `FIXED_OVERHEAD_BYTES` for the interpreter, libraries and the model itself.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from batseg.errors import InputImageError

ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE = 40
FIXED_OVERHEAD_BYTES = 400 * 1024**2
# The most the tile activations may take by default; "auto" tiles are sized to stay under it.
ACTIVATION_BUDGET_BYTES = 1536 * 1024**2


def tile_voxel_budget(first_features: int, budget_bytes: int = ACTIVATION_BUDGET_BYTES) -> int:
    """The largest tile (in voxels) whose activations fit the budget."""
    return int(budget_bytes // (ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE * max(1, first_features)))


def estimate_peak_bytes(
    input_voxels: int,
    input_bytes_per_voxel: int,
    model_shape: Sequence[int],
    tile_voxels: int,
    several_tiles: bool,
    num_classes: int,
    field_channels: int,
    first_features: int,
    keep_field: bool,
) -> int:
    """The pipeline's peak memory in bytes (see the module docstring)."""
    model_voxels = int(np.prod(model_shape, dtype=np.int64))
    per_input_voxel = input_bytes_per_voxel + 4 + 4 * num_classes + 1 + 4
    if keep_field:
        per_input_voxel += 4 * field_channels
    per_model_voxel = 4 * (1 + num_classes + field_channels + (1 if several_tiles else 0))
    activations = ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE * first_features * tile_voxels
    return int(input_voxels * per_input_voxel + model_voxels * per_model_voxel + activations + FIXED_OVERHEAD_BYTES)


def available_bytes() -> int:
    """Memory available to a new allocation now (psutil's estimate, without swapping)."""
    import psutil

    return int(psutil.virtual_memory().available)


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far.

    On Linux the high-water mark of the process's own memory map (VmHWM): `getrusage`'s
    ru_maxrss also counts the parent's resident size at the moment the process was spawned
    (the address space it was forked from), which inflates small children of big parents.
    On Windows the peak working set (psutil); elsewhere ru_maxrss (kilobytes on Linux-like
    systems, bytes on macOS).
    """
    import sys

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def check_fits(needed: int, available: int, name: str, size: Sequence[int]) -> None:
    """One-line refusal when the estimate exceeds the available memory."""
    if needed > available:
        raise InputImageError(
            f"{name} ({' x '.join(map(str, size))} voxels) needs about {needed / 1024**3:.1f} GB of memory to segment "
            f"and only {available / 1024**3:.1f} GB is available; crop the image to the spine or use a larger machine"
        )
